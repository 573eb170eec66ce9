/**
 * The WAL's bytes on disk (format version 1). A WAL folder holds numbered segment files and one
 * marker file:
 *
 *   wal-<seq>.seg   `<seq>` is 16 decimal digits, 1-based, gapless while undrained; each file is
 *                   a sequence of frames with no file header:
 *
 *                     offset 0  u32 little-endian  payload length in bytes (1 .. 64 MiB)
 *                     offset 4  u32 little-endian  CRC-32C (Castagnoli) of the payload bytes
 *                     offset 8  payload            UTF-8 JSON of one record
 *                                                  `{"record_id","kind","at","body"}`
 *
 *   lock            `{"pid": N}`; held with an exclusive flock by the one writer of the folder,
 *                   whose pid it names (stores/lock_file.ts).
 *
 *   drained         UTF-8 JSON `{"segment": <seq>, "offset": <byte offset>}`: every frame before
 *                   that position has been copied to Postgres. Replaced atomically (write a
 *                   temporary file, fsync, rename, fsync the folder).
 *
 * A frame is good only when its whole payload is present, its CRC matches and its payload parses
 * as a record; the first frame that is not good ends the readable part of a segment. Only the end
 * of the last segment may legitimately be bad (a crash mid-append), and recovery truncates it
 * there. A bad frame with a good frame anywhere after it is damage, never a torn append: appends
 * only ever add at the end, so nothing good can follow a torn one. {@link findFrame} looks for
 * such a frame byte by byte (a payload is JSON text, whose bytes are all >= 0x20, so no frame
 * header, whose length is < 64 MiB, can be read inside one), and {@link scanSegment} reads a
 * whole segment past its damage, for `worldstream wal inspect|salvage`.
 */

/** Bytes before each payload: length + CRC. */
export const FRAME_HEADER_BYTES = 8;

/** Largest payload a frame may declare; a larger length is read as corruption. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** Name of the drained-position marker file. */
export const DRAINED_FILE = "drained";

/** Name of the file the folder's writer keeps locked. */
export const LOCK_FILE = "lock";

const SEGMENT_NAME = /^wal-(\d{16})\.seg$/;

/** The file name of segment `seq`. */
export function segmentName(seq: number): string {
  return `wal-${String(seq).padStart(16, "0")}.seg`;
}

/** The sequence number of a segment file name, or `undefined` for any other name. */
export function segmentSeq(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/** One frame holding `payload`. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32c(payload), true);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** A good frame found by {@link readFrames}. */
export interface Frame<A> {
  /** Offset of the frame's header in its segment. */
  readonly offset: number;
  /** Offset just past the frame. */
  readonly end: number;
  readonly value: A;
}

/** Why {@link readFrames} stopped before the end of its bytes. */
export type FrameStop =
  /** The bytes end inside a frame: a torn append, or a read window that cut a frame short. */
  | { readonly kind: "incomplete"; readonly offset: number; readonly need: number }
  /** A frame that cannot be good whatever follows it. */
  | { readonly kind: "corrupt"; readonly offset: number; readonly problem: string };

/** What {@link readFrames} found. */
export interface FrameScan<A> {
  readonly frames: ReadonlyArray<Frame<A>>;
  /** Offset just past the last good frame read (the start offset when none was). */
  readonly end: number;
  /** Set when reading stopped at a frame that is not good. */
  readonly stop?: FrameStop;
}

/**
 * Reads good frames from `bytes`, which start at segment offset `start`, up to `max` of them.
 * `parse` turns a payload into a value or returns a string naming what is wrong with it.
 */
export function readFrames<A>(
  bytes: Uint8Array,
  start: number,
  parse: (payload: Uint8Array) => A | string,
  max = Number.POSITIVE_INFINITY,
): FrameScan<A> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: Array<Frame<A>> = [];
  let at = 0;
  while (at < bytes.length && frames.length < max) {
    const offset = start + at;
    if (bytes.length - at < FRAME_HEADER_BYTES) {
      return {
        frames,
        end: offset,
        stop: { kind: "incomplete", offset, need: FRAME_HEADER_BYTES },
      };
    }
    const length = view.getUint32(at, true);
    if (length === 0 || length > MAX_PAYLOAD_BYTES) {
      return {
        frames,
        end: offset,
        stop: { kind: "corrupt", offset, problem: `impossible payload length ${length}` },
      };
    }
    const size = FRAME_HEADER_BYTES + length;
    if (bytes.length - at < size) {
      return { frames, end: offset, stop: { kind: "incomplete", offset, need: size } };
    }
    const payload = bytes.subarray(at + FRAME_HEADER_BYTES, at + size);
    const expected = view.getUint32(at + 4, true);
    const actual = crc32c(payload);
    if (actual !== expected) {
      return {
        frames,
        end: offset,
        stop: {
          kind: "corrupt",
          offset,
          problem: `CRC mismatch (stored ${hex(expected)}, computed ${hex(actual)})`,
        },
      };
    }
    const value = parse(payload);
    if (typeof value === "string") {
      return { frames, end: offset, stop: { kind: "corrupt", offset, problem: value } };
    }
    frames.push({ offset, end: offset + size, value });
    at += size;
  }
  return { frames, end: start + at };
}

/**
 * The offset of the first good frame that starts at or after `from` in `bytes` (a whole segment),
 * at any byte offset, or `undefined` when there is none.
 */
export function findFrame<A>(
  bytes: Uint8Array,
  from: number,
  parse: (payload: Uint8Array) => A | string,
): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = Math.max(0, from); at + FRAME_HEADER_BYTES < bytes.length; at++) {
    const length = view.getUint32(at, true);
    if (length === 0 || length > MAX_PAYLOAD_BYTES) continue;
    if (at + FRAME_HEADER_BYTES + length > bytes.length) continue;
    // Every record's JSON opens with `{`: a cheap test before the CRC.
    if (bytes[at + FRAME_HEADER_BYTES] !== 0x7b) continue;
    if (readFrames(bytes.subarray(at), at, parse, 1).frames.length === 1) return at;
  }
  return undefined;
}

/** Bytes of a segment that hold no good frame, with what is wrong at their start. */
export interface Damage {
  readonly offset: number;
  /** Offset just past the damaged bytes: the next good frame, or the end of the segment. */
  readonly end: number;
  readonly problem: string;
}

/** A whole segment read past its damage: every good frame, and the bytes between them. */
export interface SegmentScan<A> {
  readonly frames: ReadonlyArray<Frame<A>>;
  /** Damaged stretches in order; the last may run to the end of the segment (a torn tail). */
  readonly damage: ReadonlyArray<Damage>;
}

/** Reads every good frame of a whole segment, stepping over bad bytes to the next good frame. */
export function scanSegment<A>(
  bytes: Uint8Array,
  parse: (payload: Uint8Array) => A | string,
): SegmentScan<A> {
  const frames: Array<Frame<A>> = [];
  const damage: Array<Damage> = [];
  let at = 0;
  while (at < bytes.length) {
    const scan = readFrames(bytes.subarray(at), at, parse);
    frames.push(...scan.frames);
    if (scan.stop === undefined) break;
    const next = findFrame(bytes, scan.stop.offset + 1, parse);
    const problem = scan.stop.kind === "corrupt" ? scan.stop.problem : "frame cut short";
    damage.push({ offset: scan.stop.offset, end: next ?? bytes.length, problem });
    if (next === undefined) break;
    at = next;
  }
  return { frames, damage };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing by 8 bytes at a time.
const CRC_TABLES: ReadonlyArray<Uint32Array> = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      const prev = tables[t - 1][n];
      tables[t][n] = (tables[0][prev & 0xff] ^ (prev >>> 8)) >>> 0;
    }
  }
  return tables;
})();

/** CRC-32C of `bytes` (`crc32c("123456789") === 0xe3069283`). */
export function crc32c(bytes: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES;
  let crc = 0xffffffff;
  let i = 0;
  const fast = bytes.length - (bytes.length % 8);
  while (i < fast) {
    const lo = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = t7[lo & 0xff] ^ t6[(lo >>> 8) & 0xff] ^ t5[(lo >>> 16) & 0xff] ^ t4[lo >>> 24] ^
      t3[bytes[i + 4]] ^ t2[bytes[i + 5]] ^ t1[bytes[i + 6]] ^ t0[bytes[i + 7]];
    i += 8;
  }
  while (i < bytes.length) crc = t0[(crc ^ bytes[i++]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

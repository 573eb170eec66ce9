/**
 * What an operator does with a WAL that refuses to open with WAL_CORRUPT (writer.ts): look at the
 * damage, then salvage what is intact. `worldstream wal inspect|salvage` (cli/wal.ts) calls these.
 *
 * inspect reads every undrained segment past its damage (stores/wal_format.ts, scanSegment) and
 * says, per segment, how many records are intact, where the damaged bytes are and what the writer
 * will make of them on open: `ok`, `torn_tail` (bad bytes at the very end of the last segment,
 * cut off on open) or `corrupt` (the open fails). It reads only, and takes no lock.
 *
 * salvage takes the WAL's lock, so it runs only while nothing else has the WAL open. Each corrupt
 * segment is first copied whole to `<dir>/salvaged/<segment>.<epoch ms>` (fsynced), then replaced
 * durably (written beside, fsynced, renamed over, folder fsynced) by its intact frames alone, in
 * their order, and the drained marker moves to the same record boundary. Records inside the
 * damaged bytes cannot be read and are lost (the copy keeps their bytes); every record kept passed
 * its CRC, and the drain's upserts are idempotent by record id, so none is applied twice. A torn
 * tail is left for the writer's open to cut, as it always does.
 */
import { Clock, Effect } from "effect";
import { basename, join } from "node:path";
import { replaceFileDurably, syncDir } from "../../stores/durable_file.ts";
import {
  type Damage,
  DRAINED_FILE,
  scanSegment,
  segmentName,
  segmentSeq,
} from "../../stores/wal_format.ts";
import type { WalRecord } from "../../stores/wal_records.ts";
import {
  concat,
  io,
  lockFolder,
  parsePayload,
  readDrained,
  type WalPosition,
  writeDrained,
} from "./writer.ts";

/** What the writer makes of a segment on open. */
export type SegmentVerdict = "ok" | "torn_tail" | "corrupt";

/** One undrained segment as {@link inspectWal} found it. */
export interface SegmentReport {
  readonly segment: string;
  readonly bytes: number;
  /** Intact records in the segment (drained ones included). */
  readonly records: number;
  readonly damage: ReadonlyArray<Damage>;
  readonly verdict: SegmentVerdict;
}

/** {@link inspectWal}'s answer: `CORRUPT` when the writer would refuse to open the WAL. */
export interface WalInspection {
  readonly status: "OK" | "TORN_TAIL" | "CORRUPT";
  readonly dir: string;
  readonly drained: WalPosition;
  readonly segments: ReadonlyArray<SegmentReport>;
}

/** One segment {@link salvageWal} rewrote. */
export interface SalvagedSegment {
  readonly segment: string;
  readonly bytes_before: number;
  readonly bytes_after: number;
  readonly records_kept: number;
  readonly damage: ReadonlyArray<Damage>;
  /** Where the damaged segment's original bytes are kept. */
  readonly saved_as: string;
}

/** {@link salvageWal}'s answer: `CLEAN` when there was nothing to salvage. */
export interface WalSalvage {
  readonly status: "SALVAGED" | "CLEAN";
  readonly dir: string;
  readonly drained: WalPosition;
  readonly segments: ReadonlyArray<SalvagedSegment>;
}

interface Scanned {
  readonly seq: number;
  readonly path: string;
  readonly content: Uint8Array;
  readonly frames: ReadonlyArray<{ offset: number; end: number; value: WalRecord }>;
  readonly report: SegmentReport;
}

/** Reads the WAL in `dir` past its damage and says what its writer would make of it. */
export const inspectWal = Effect.fn("Wal.inspect")(function* (dir: string) {
  const { drained, scanned } = yield* scanWal(dir);
  const verdicts = scanned.map((s) => s.report.verdict);
  return {
    status: verdicts.includes("corrupt")
      ? "CORRUPT"
      : verdicts.includes("torn_tail")
      ? "TORN_TAIL"
      : "OK",
    dir,
    drained,
    segments: scanned.map((s) => s.report),
  } satisfies WalInspection;
});

/** Rewrites each corrupt segment of the WAL in `dir` with its intact records (see the header). */
export const salvageWal = Effect.fn("Wal.salvage")(function* (dir: string) {
  return yield* Effect.scoped(Effect.gen(function* () {
    yield* lockFolder(dir);
    const { drained: before, scanned } = yield* scanWal(dir);
    let drained = before;
    const salvaged: Array<SalvagedSegment> = [];
    const stamp = yield* Clock.currentTimeMillis;
    for (const s of scanned) {
      if (s.report.verdict !== "corrupt") continue;
      const savedAs = join(dir, "salvaged", `${basename(s.path)}.${stamp}`);
      yield* io(`save ${s.path} as ${savedAs}`, async () => {
        await Deno.mkdir(join(dir, "salvaged"), { recursive: true });
        await replaceFileDurably(savedAs, s.content);
        await syncDir(dir);
      });
      const kept = concat(s.frames.map((f) => s.content.subarray(f.offset, f.end)));
      yield* io(`rewrite ${s.path}`, () => replaceFileDurably(s.path, kept));
      if (drained.segment === s.seq) {
        // The same record boundary in the rewritten segment: the intact bytes before it.
        const offset = s.frames.filter((f) => f.end <= drained.offset)
          .reduce((n, f) => n + (f.end - f.offset), 0);
        drained = { segment: s.seq, offset };
        yield* writeDrained(dir, drained);
      }
      salvaged.push({
        segment: basename(s.path),
        bytes_before: s.content.length,
        bytes_after: kept.length,
        records_kept: s.frames.length,
        damage: s.report.damage,
        saved_as: savedAs,
      });
      yield* Effect.logWarning("WAL segment salvaged").pipe(Effect.annotateLogs({
        file: s.path,
        saved_as: savedAs,
        records_kept: s.frames.length,
        damaged_bytes: s.content.length - kept.length,
      }));
    }
    return {
      status: salvaged.length === 0 ? "CLEAN" : "SALVAGED",
      dir,
      drained,
      segments: salvaged,
    } satisfies WalSalvage;
  }));
});

/** Every undrained segment of the WAL in `dir`, read whole and scanned past its damage. */
function scanWal(dir: string) {
  return Effect.gen(function* () {
    const names = yield* io(`list ${dir}`, async () => {
      try {
        return (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.isFile).map((e) =>
          e.name
        );
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return [];
        throw e;
      }
    });
    const seqs = names.map(segmentSeq).filter((s): s is number => s !== undefined)
      .sort((a, b) => a - b);
    const drained = names.includes(DRAINED_FILE)
      ? yield* readDrained(join(dir, DRAINED_FILE))
      : { segment: seqs[0] ?? 1, offset: 0 };
    const live = seqs.filter((s) => s >= drained.segment);
    const scanned: Array<Scanned> = [];
    for (const [i, seq] of live.entries()) {
      const path = join(dir, segmentName(seq));
      const content = yield* io(`read ${path}`, () => Deno.readFile(path));
      const scan = scanSegment(content, parsePayload);
      const isLast = i === live.length - 1;
      const tornTailOnly = isLast && scan.damage.length === 1 &&
        scan.damage[0].end === content.length;
      scanned.push({
        seq,
        path,
        content,
        frames: scan.frames,
        report: {
          segment: segmentName(seq),
          bytes: content.length,
          records: scan.frames.length,
          damage: scan.damage,
          verdict: scan.damage.length === 0 ? "ok" : tornTailOnly ? "torn_tail" : "corrupt",
        },
      });
    }
    return { drained, scanned };
  });
}

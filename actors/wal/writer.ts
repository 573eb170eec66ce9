/**
 * The write-ahead log: worldstream's local durable outbox. Actors append records here instead of
 * writing Postgres on the streaming path; a drain copies them to Postgres later (drain.ts).
 * One writer per process and per folder. The bytes on disk are described in stores/wal_format.ts.
 *
 * Appends use group commit: callers put encoded records on a bounded queue and wait; one writer
 * fiber takes everything queued, writes it with one write and one fsync per segment touched, and
 * only then completes the callers. While an fsync runs the next group gathers, so concurrency,
 * not a timer, sets the group size; `lingerMs` adds an optional wait before each write.
 *
 * Undrained bytes are bounded by a quota: an append that would pass it fails whole with
 * WAL_QUOTA_EXCEEDED and writes nothing. Drained segments are deleted, so the folder holds at
 * most the quota plus one segment.
 *
 * On open, every undrained segment is read and checked. A bad frame at the end of the last segment,
 * with nothing good after it, is a torn append: it is logged and truncated, and the good prefix is
 * kept. A bad frame anywhere else, or one that good frames follow, is damage to acknowledged data:
 * the open fails with WAL_CORRUPT naming the segment and the offset, and the command that sets the
 * damage aside (`worldstream wal inspect|salvage`, actors/wal/salvage.ts).
 */
import { Context, Deferred, Effect, Fiber, Layer, Queue, Result, Semaphore } from "effect";
import { replaceFileDurably, syncDir, writeAll } from "../../stores/durable_file.ts";
import type { Cause, Scope } from "effect";
import { fail, WorldstreamError } from "../../schemas/errors.ts";
import { tryLockFile } from "../../stores/lock_file.ts";
import {
  DRAINED_FILE,
  encodeFrame,
  findFrame,
  LOCK_FILE,
  MAX_PAYLOAD_BYTES,
  readFrames,
  segmentName,
  segmentSeq,
} from "../../stores/wal_format.ts";
import {
  type CheckpointBody,
  type CheckpointResetBody,
  decodeWalRecord,
  parseWalRecord,
  type WalRecord,
} from "../../stores/wal_records.ts";

export { type WalKind, type WalRecord, walRecord } from "../../stores/wal_records.ts";

/** Where and how the WAL keeps its records. */
export interface WalOptions {
  /** The WAL folder (created if missing); one writer at a time. */
  readonly dir: string;
  /** A segment is closed and the next one started before it would pass this size (8 MiB). */
  readonly segmentBytes?: number;
  /** Most undrained bytes the WAL holds before appends fail (1 GiB). */
  readonly quotaBytes?: number;
  /** Extra wait before each group write to gather more appends, in ms (0; at most 2). */
  readonly lingerMs?: number;
  /** Most appends waiting for the writer before `append` itself waits (4096). */
  readonly queueCapacity?: number;
}

/** A byte position in the WAL: a segment and an offset in it. */
export interface WalPosition {
  readonly segment: number;
  readonly offset: number;
}

/** A snapshot of the WAL's counters. */
export interface WalStats {
  /** Segment files on disk. */
  readonly segments: number;
  /** Bytes of all segment files on disk. */
  readonly bytes: number;
  /** Bytes of records not yet drained (what the quota bounds). */
  readonly undrainedBytes: number;
  /** Records not yet drained. */
  readonly records: number;
  readonly quotaBytes: number;
  /** Appends acknowledged since open. */
  readonly appends: number;
  /** Records in those appends. */
  readonly appendedRecords: number;
  /** Group writes since open. */
  readonly batches: number;
  /** fsyncs of segment data since open. */
  readonly fsyncs: number;
  /** Records drained since open. */
  readonly drainedRecords: number;
  /** Everything before this position is drained. */
  readonly drained: WalPosition;
}

/** What opening the WAL found. */
export interface WalRecovery {
  /** Undrained segments read. */
  readonly segments: number;
  /** Undrained records found (readable with `pending`). */
  readonly records: number;
  readonly bytes: number;
  /** A torn or corrupt tail cut from the last segment. */
  readonly truncated?: { readonly file: string; readonly offset: number; readonly problem: string };
}

/** The latest checkpoint record of one output that this WAL holds or appended since open. */
export interface WalCheckpoint {
  readonly body: CheckpointBody;
  readonly at: string;
  /**
   * True when an operator's reset (a `checkpoint_reset` record) set this output's position since
   * the WAL was opened, so this position is newer than whatever Postgres holds, even a higher one.
   */
  readonly reset: boolean;
}

/** Options of {@link Wal.drainOnce}. */
export interface DrainOptions {
  /** Records handed to the handler at a time (500). */
  readonly batchSize?: number;
}

/** The WAL of this process. */
export class Wal extends Context.Service<Wal, {
  /**
   * Appends records; succeeds once they are on disk (fsynced). All or nothing per call, except
   * that an append which failed on I/O, or whose caller was interrupted, may still have landed:
   * record ids make such a replay harmless downstream.
   */
  readonly append: (records: ReadonlyArray<WalRecord>) => Effect.Effect<void, WorldstreamError>;
  /** Every record not yet drained, in append order (reads the segments). */
  readonly pending: Effect.Effect<ReadonlyArray<WalRecord>, WorldstreamError>;
  readonly stats: Effect.Effect<WalStats>;
  /** What the open found. */
  readonly recovery: WalRecovery;
  /**
   * Hands undrained records to `handler` in order, `batchSize` at a time, and after each batch
   * the handler completes records the progress on disk and deletes drained segments. Stops when
   * nothing is left or the handler fails (that batch stays undrained). Returns how many records
   * it drained. One drain runs at a time.
   */
  readonly drainOnce: <E, R>(
    handler: (records: ReadonlyArray<WalRecord>) => Effect.Effect<void, E, R>,
    options?: DrainOptions,
  ) => Effect.Effect<number, E | WorldstreamError, R>;
  /** The highest-`last_seq` checkpoint record for an output among those found or appended. */
  readonly checkpoint: (
    packKey: string,
    outputId: string,
  ) => Effect.Effect<WalCheckpoint | undefined>;
}>()("worldstream/stores/Wal") {
  /** A WAL in `options.dir`, opened (and recovered) when built, flushed when its scope closes. */
  static readonly layer = (options: WalOptions): Layer.Layer<Wal, WorldstreamError> =>
    Layer.effect(Wal, make(options));
}

const MIB = 1024 * 1024;
const DEFAULTS = {
  segmentBytes: 8 * MIB,
  quotaBytes: 1024 * MIB,
  lingerMs: 0,
  queueCapacity: 4096,
};
/** Most appends one group write takes off the queue. */
const MAX_GROUP_APPENDS = 4096;
/** Bytes the drain reads from a segment at a time (more when one frame is larger). */
const READ_CHUNK_BYTES = MIB;

interface Segment {
  readonly seq: number;
  /** Bytes written and fsynced. */
  size: number;
}

interface PendingAppend {
  readonly bytes: Uint8Array;
  readonly records: number;
  readonly checkpoints: ReadonlyArray<WalRecord>;
  readonly done: Deferred.Deferred<void, WorldstreamError>;
}

interface WalState {
  /** Undrained segments in order; the last is the one being written. */
  readonly segments: Array<Segment>;
  file: Deno.FsFile;
  drained: WalPosition;
  undrainedBytes: number;
  undrainedRecords: number;
  appends: number;
  appendedRecords: number;
  batches: number;
  fsyncs: number;
  drainedRecords: number;
  /** Set after an I/O failure that leaves the segment's durable state unknown. */
  broken: WorldstreamError | undefined;
  readonly checkpoints: Map<string, IndexedCheckpoint>;
}

function make(options: WalOptions) {
  return Effect.gen(function* () {
    const config = { ...DEFAULTS, ...options };
    if (config.lingerMs < 0 || config.lingerMs > 2) {
      // Options come from code, never from input: a bad one is a bug.
      return yield* Effect.die(new RangeError(`lingerMs must be 0..2, got ${config.lingerMs}`));
    }
    const dir = config.dir.replace(/\/+$/, "");
    const path = (name: string) => `${dir}/${name}`;
    yield* lockFolder(dir);
    const recovered = yield* recover(dir);
    const { recovery } = recovered;

    const state: WalState = {
      segments: recovered.segments,
      file: undefined as unknown as Deno.FsFile,
      drained: recovered.drained,
      undrainedBytes: recovery.bytes,
      undrainedRecords: recovery.records,
      appends: 0,
      appendedRecords: 0,
      batches: 0,
      fsyncs: 0,
      drainedRecords: 0,
      broken: undefined,
      checkpoints: recovered.checkpoints,
    };
    const last = () => state.segments[state.segments.length - 1];
    state.file = yield* io(`open ${path(segmentName(last().seq))}`, async () => {
      const file = await Deno.open(path(segmentName(last().seq)), { read: true, write: true });
      await file.seek(last().size, Deno.SeekMode.Start);
      return file;
    });
    yield* Effect.addFinalizer(() => Effect.sync(() => state.file.close()));

    // -------------------------------------------------------------------------------------------
    // Writer

    const queue = yield* Queue.bounded<PendingAppend, Cause.Done>(config.queueCapacity);

    const rotate = Effect.gen(function* () {
      const seq = last().seq + 1;
      const next = yield* io(`create ${path(segmentName(seq))}`, async () => {
        const file = await Deno.open(path(segmentName(seq)), {
          read: true,
          write: true,
          createNew: true,
        });
        await syncDir(dir);
        return file;
      });
      state.file.close();
      state.file = next;
      state.segments.push({ seq, size: 0 });
    });

    /** Writes one group at the end of the current segment with one fsync, then acknowledges it. */
    const writeGroup = (group: ReadonlyArray<PendingAppend>) =>
      Effect.gen(function* () {
        if (group.length === 0) return;
        const segment = last();
        const file = state.file;
        const bytes = concat(group.map((p) => p.bytes));
        const name = path(segmentName(segment.seq));
        const written = yield* Effect.result(io(`write ${name}`, async () => {
          await file.seek(segment.size, Deno.SeekMode.Start);
          await writeAll(file, bytes);
        }));
        if (Result.isFailure(written)) {
          // Cut the partial write off so the next group starts on a frame boundary.
          const cut = yield* Effect.result(io(`truncate ${name}`, async () => {
            await file.truncate(segment.size);
            await file.syncData();
          }));
          if (Result.isFailure(cut)) state.broken = brokenBy(name);
          return yield* settle(group, written.failure);
        }
        const synced = yield* Effect.result(io(`fsync ${name}`, () => file.syncData()));
        if (Result.isFailure(synced)) {
          // After a failed fsync the kernel may have dropped the dirty pages: nothing written
          // since the last good fsync can be trusted, so the WAL stops accepting appends.
          state.broken = brokenBy(name);
          return yield* settle(group, synced.failure);
        }
        segment.size += bytes.length;
        state.fsyncs += 1;
        state.batches += 1;
        for (const p of group) {
          state.appends += 1;
          state.appendedRecords += p.records;
          state.undrainedRecords += p.records;
          for (const r of p.checkpoints) noteCheckpoint(state.checkpoints, r);
        }
        yield* settle(group, undefined);
      });

    /** Completes a group's appends: all succeed, or all fail with `error` and give back their room. */
    const settle = (group: ReadonlyArray<PendingAppend>, error: WorldstreamError | undefined) =>
      Effect.gen(function* () {
        for (const p of group) {
          if (error === undefined) {
            yield* Deferred.succeed(p.done, undefined);
          } else {
            state.undrainedBytes -= p.bytes.length;
            yield* Deferred.fail(p.done, error);
          }
        }
      });

    /** Admits what fits the quota, splits at segment boundaries, writes each part. */
    const commit = (batch: ReadonlyArray<PendingAppend>) =>
      Effect.gen(function* () {
        let group: Array<PendingAppend> = [];
        let groupBytes = 0;
        for (const p of batch) {
          if (state.broken !== undefined) {
            yield* Deferred.fail(p.done, state.broken);
            continue;
          }
          if (state.undrainedBytes + p.bytes.length > config.quotaBytes) {
            yield* Deferred.fail(p.done, quotaExceeded(p.bytes.length, state, config.quotaBytes));
            continue;
          }
          const used = last().size + groupBytes;
          if (used > 0 && used + p.bytes.length > config.segmentBytes) {
            yield* writeGroup(group);
            group = [];
            groupBytes = 0;
            const rotated = yield* Effect.result(rotate);
            if (Result.isFailure(rotated)) state.broken = rotated.failure;
            if (state.broken !== undefined) {
              yield* Deferred.fail(p.done, state.broken);
              continue;
            }
          }
          state.undrainedBytes += p.bytes.length;
          group.push(p);
          groupBytes += p.bytes.length;
        }
        yield* writeGroup(group);
      }).pipe(Effect.uninterruptible);

    const takeMore = (room: number) =>
      Queue.takeBetween(queue, 0, room).pipe(Effect.catch(() => Effect.succeed([])));

    const writer = Effect.gen(function* () {
      while (true) {
        const batch = yield* Queue.takeBetween(queue, 1, MAX_GROUP_APPENDS);
        if (config.lingerMs > 0 && batch.length < MAX_GROUP_APPENDS) {
          yield* Effect.sleep(`${config.lingerMs} millis`);
          batch.push(...(yield* takeMore(MAX_GROUP_APPENDS - batch.length)));
        }
        yield* commit(batch).pipe(
          // A bug must not leave callers waiting forever: fail them and stop accepting appends.
          Effect.catchDefect((defect) =>
            Effect.gen(function* () {
              state.broken = fail("WAL_IO_FAILED", `WAL writer failed: ${firstLine(defect)}`);
              yield* Effect.logError("WAL writer failed", defect);
              for (const p of batch) yield* Deferred.fail(p.done, state.broken);
            })
          ),
        );
      }
    }).pipe(Effect.catch(() => Effect.void));

    const writerFiber = yield* Effect.forkScoped(writer);
    // Runs before the fork's own finalizer interrupts the writer: appends already queued are
    // written and acknowledged, later ones fail with WAL_CLOSED.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Queue.end(queue);
        yield* Fiber.join(writerFiber);
        const left = yield* Queue.clear(queue).pipe(Effect.catch(() => Effect.succeed([])));
        for (const p of left) yield* Deferred.fail(p.done, closed(dir));
      })
    );

    // Untraced: a traced Effect.fn costs ~20 µs a call (span and stack capture), a fifth of an
    // append's whole CPU budget under group commit.
    const append = Effect.fnUntraced(function* (records: ReadonlyArray<WalRecord>) {
      if (records.length === 0) return;
      const frames: Array<Uint8Array> = [];
      const checkpoints: Array<WalRecord> = [];
      for (const input of records) {
        const r = yield* decodeWalRecord(input);
        const payload = yield* Effect.try({
          try: () =>
            encoder.encode(
              JSON.stringify({ record_id: r.record_id, kind: r.kind, at: r.at, body: r.body }),
            ),
          catch: (e) =>
            fail("WAL_RECORD_INVALID", `WAL record ${r.record_id} is not JSON-serialisable: ${e}`),
        });
        if (payload.length > MAX_PAYLOAD_BYTES) {
          return yield* fail(
            "WAL_RECORD_INVALID",
            `WAL record ${r.record_id} is ${payload.length} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit`,
          );
        }
        frames.push(encodeFrame(payload));
        if (r.kind === "checkpoint" || r.kind === "checkpoint_reset") checkpoints.push(r);
      }
      const done = yield* Deferred.make<void, WorldstreamError>();
      const item = { bytes: concat(frames), records: records.length, checkpoints, done };
      const accepted = yield* Queue.offer(queue, item);
      if (!accepted) return yield* closed(dir);
      return yield* Deferred.await(done);
    });

    // -------------------------------------------------------------------------------------------
    // Reading and draining

    const drainLock = yield* Semaphore.make(1);

    /** Moves a position at the end of a finished segment to the start of the next. */
    const normalise = (position: WalPosition): WalPosition => {
      let at = position;
      for (let i = 0; i < state.segments.length - 1; i++) {
        const s = state.segments[i];
        if (s.seq === at.segment && at.offset >= s.size) {
          at = { segment: state.segments[i + 1].seq, offset: 0 };
        }
      }
      return at;
    };

    /** Up to `max` durable records from `from` on, with the position after them. */
    const readBatch = (from: WalPosition, max: number) =>
      Effect.gen(function* () {
        const records: Array<WalRecord> = [];
        let at = normalise(from);
        let bytes = 0;
        while (records.length < max) {
          const segment = state.segments.find((s) => s.seq === at.segment);
          if (segment === undefined || at.offset >= segment.size) break;
          const name = path(segmentName(segment.seq));
          const available = segment.size - at.offset;
          let chunk = yield* readRange(name, at.offset, Math.min(available, READ_CHUNK_BYTES));
          let scan = readFrames(chunk, at.offset, parsePayload, max - records.length);
          if (scan.frames.length === 0 && scan.stop?.kind === "incomplete") {
            if (scan.stop.need <= available) {
              chunk = yield* readRange(name, at.offset, scan.stop.need);
              scan = readFrames(chunk, at.offset, parsePayload, 1);
            }
          }
          if (scan.frames.length === 0) {
            const problem = scan.stop?.kind === "corrupt" ? scan.stop.problem : "frame cut short";
            return yield* corrupt(name, at.offset, problem);
          }
          for (const f of scan.frames) records.push(f.value);
          bytes += scan.end - at.offset;
          at = normalise({ segment: segment.seq, offset: scan.end });
        }
        return { records, next: at, bytes };
      });

    const saveDrained = (position: WalPosition) =>
      Effect.gen(function* () {
        yield* writeDrained(dir, position);
        state.drained = position;
        while (state.segments.length > 1 && state.segments[0].seq < position.segment) {
          const gone = state.segments[0];
          const removed = yield* Effect.result(
            io(`delete ${path(segmentName(gone.seq))}`, () =>
              Deno.remove(path(segmentName(gone.seq)))),
          );
          // A segment left behind is below the marker, so the next open deletes it.
          if (Result.isFailure(removed)) {
            yield* Effect.logWarning(`WAL segment ${segmentName(gone.seq)} was not deleted`);
          }
          state.segments.shift();
        }
      }).pipe(Effect.uninterruptible);

    const drainOnce = <E, R>(
      handler: (records: ReadonlyArray<WalRecord>) => Effect.Effect<void, E, R>,
      drainOptions: DrainOptions = {},
    ): Effect.Effect<number, E | WorldstreamError, R> =>
      drainLock.withPermit(Effect.gen(function* () {
        const batchSize = Math.max(1, drainOptions.batchSize ?? 500);
        let drained = 0;
        while (true) {
          const { records, next, bytes } = yield* readBatch(state.drained, batchSize);
          if (records.length > 0) yield* handler(records);
          if (next.segment !== state.drained.segment || next.offset !== state.drained.offset) {
            yield* saveDrained(next);
          }
          state.undrainedBytes -= bytes;
          state.undrainedRecords -= records.length;
          state.drainedRecords += records.length;
          drained += records.length;
          if (records.length < batchSize) return drained;
        }
      })).pipe(Effect.withSpan("Wal.drainOnce"));

    const pending = drainLock.withPermit(Effect.gen(function* () {
      const all: Array<WalRecord> = [];
      let at = state.drained;
      while (true) {
        const { records, next } = yield* readBatch(at, 10_000);
        all.push(...records);
        if (records.length === 0) return all as ReadonlyArray<WalRecord>;
        at = next;
      }
    }));

    const stats = Effect.sync((): WalStats => ({
      segments: state.segments.length,
      bytes: state.segments.reduce((sum, s) => sum + s.size, 0),
      undrainedBytes: state.undrainedBytes,
      records: state.undrainedRecords,
      quotaBytes: config.quotaBytes,
      appends: state.appends,
      appendedRecords: state.appendedRecords,
      batches: state.batches,
      fsyncs: state.fsyncs,
      drainedRecords: state.drainedRecords,
      drained: state.drained,
    }));

    const checkpoint = (packKey: string, outputId: string) =>
      Effect.sync(() => {
        const c = state.checkpoints.get(checkpointKey(packKey, outputId));
        return c === undefined ? undefined : { body: c.body, at: c.record.at, reset: c.reset };
      });

    return Wal.of({ append, pending, stats, recovery, drainOnce, checkpoint });
  });
}

// ---------------------------------------------------------------------------------------------
// Recovery

interface Recovered {
  readonly segments: Array<Segment>;
  readonly drained: WalPosition;
  readonly recovery: WalRecovery;
  readonly checkpoints: Map<string, IndexedCheckpoint>;
}

/** Reads the folder, checks every undrained segment, truncates a torn tail; see the header. */
const recover = Effect.fn("Wal.recover")(function* (dir: string) {
  const path = (name: string) => `${dir}/${name}`;
  const names = yield* io(`list ${dir}`, async () => {
    await Deno.mkdir(dir, { recursive: true });
    return (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.isFile).map((e) => e.name);
  });
  const seqs = names.map(segmentSeq).filter((s): s is number => s !== undefined).sort((a, b) =>
    a - b
  );
  let drained = names.includes(DRAINED_FILE)
    ? yield* readDrained(path(DRAINED_FILE))
    : { segment: seqs[0] ?? 1, offset: 0 };

  // Segments below the marker were drained; a crash can leave them before they are deleted.
  for (const seq of seqs.filter((s) => s < drained.segment)) {
    yield* io(`delete ${path(segmentName(seq))}`, () => Deno.remove(path(segmentName(seq))));
  }
  const live = seqs.filter((s) => s >= drained.segment);
  if (live[0] !== drained.segment) {
    if (drained.offset !== 0) {
      return yield* corrupt(
        path(DRAINED_FILE),
        0,
        `drained marker points into ${segmentName(drained.segment)}, which is missing`,
      );
    }
    drained = { segment: live[0] ?? drained.segment, offset: 0 };
  }
  for (let i = 1; i < live.length; i++) {
    if (live[i] !== live[i - 1] + 1) {
      return yield* corrupt(
        path(segmentName(live[i])),
        0,
        `segment ${segmentName(live[i - 1] + 1)} before it is missing`,
      );
    }
  }

  const segments: Array<Segment> = [];
  const checkpoints = new Map<string, IndexedCheckpoint>();
  let records = 0;
  let bytes = 0;
  let truncated: WalRecovery["truncated"];
  for (const [i, seq] of live.entries()) {
    const name = path(segmentName(seq));
    const content = yield* io(`read ${name}`, () => Deno.readFile(name));
    const scan = readFrames(content, 0, parsePayload);
    const isLast = i === live.length - 1;
    let size = content.length;
    if (scan.stop !== undefined) {
      const problem = scan.stop.kind === "corrupt" ? scan.stop.problem : "frame cut short";
      if (!isLast) return yield* damaged(dir, name, scan.stop.offset, problem);
      // A torn append is the last thing in the log: a good frame after it means damage.
      const next = findFrame(content, scan.stop.offset + 1, parsePayload);
      if (next !== undefined) {
        return yield* damaged(
          dir,
          name,
          scan.stop.offset,
          `${problem}, with intact records after it (the next at offset ${next}), so not a torn tail`,
        );
      }
      yield* Effect.logWarning(
        `WAL tail of ${name} is torn at offset ${scan.stop.offset} (${problem}); ` +
          `truncating ${
            content.length - scan.end
          } bytes and keeping the ${scan.frames.length} records before it`,
      ).pipe(Effect.annotateLogs({ file: name, offset: scan.stop.offset, problem }));
      yield* io(`truncate ${name}`, async () => {
        const file = await Deno.open(name, { write: true });
        try {
          await file.truncate(scan.end);
          await file.syncData();
        } finally {
          file.close();
        }
      });
      size = scan.end;
      truncated = { file: name, offset: scan.stop.offset, problem };
    }
    let from = 0;
    if (seq === drained.segment) {
      if (drained.offset > size) {
        if (!isLast) {
          return yield* corrupt(
            path(DRAINED_FILE),
            0,
            `drained offset ${drained.offset} is past the end of ${name} (${size} bytes)`,
          );
        }
        // The drained tail was cut off above; new appends go at `size`, so the marker must too.
        drained = { segment: seq, offset: size };
        yield* writeDrained(dir, drained);
      }
      from = drained.offset;
      if (from !== 0 && from !== size && !scan.frames.some((f) => f.end === from)) {
        return yield* corrupt(
          path(DRAINED_FILE),
          0,
          `drained offset ${from} is not a frame boundary of ${name}`,
        );
      }
    }
    for (const f of scan.frames) {
      if (f.offset < from) continue;
      records += 1;
      bytes += f.end - f.offset;
      if (f.value.kind === "checkpoint" || f.value.kind === "checkpoint_reset") {
        noteCheckpoint(checkpoints, f.value);
      }
    }
    segments.push({ seq, size });
  }
  if (segments.length === 0) {
    const seq = drained.segment;
    yield* io(`create ${path(segmentName(seq))}`, async () => {
      (await Deno.open(path(segmentName(seq)), { write: true, createNew: true })).close();
      await syncDir(dir);
    });
    segments.push({ seq, size: 0 });
  }
  return {
    segments,
    drained,
    checkpoints,
    recovery: {
      segments: live.length,
      records,
      bytes,
      ...(truncated === undefined ? {} : { truncated }),
    },
  } satisfies Recovered;
});

/**
 * Holds an exclusive lock on `<dir>/lock` until the scope closes: one writer per folder. The file
 * names its holder's pid, so a second opener is told at once who holds it.
 */
export function lockFolder(dir: string): Effect.Effect<void, WorldstreamError, Scope.Scope> {
  return Effect.gen(function* () {
    const attempt = yield* Effect.acquireRelease(
      io(`lock ${dir}`, async () => {
        await Deno.mkdir(dir, { recursive: true });
        return await tryLockFile(`${dir}/${LOCK_FILE}`);
      }),
      (attempt) => Effect.sync(() => attempt.locked && attempt.file.close()),
    );
    if (!attempt.locked) {
      return yield* fail(
        "WAL_LOCKED",
        `WAL in ${dir} is already open in another process (pid ${
          attempt.holder ?? "unknown"
        }); stop it first`,
      );
    }
  });
}

/** The drained marker's position (WAL_CORRUPT when it is malformed). */
export function readDrained(file: string): Effect.Effect<WalPosition, WorldstreamError> {
  return Effect.gen(function* () {
    const text = yield* io(`read ${file}`, () => Deno.readTextFile(file));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return yield* corrupt(file, 0, "drained marker is not JSON");
    }
    const { segment, offset } = (value ?? {}) as Record<string, unknown>;
    if (
      typeof segment !== "number" || !Number.isSafeInteger(segment) || segment < 1 ||
      typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0
    ) {
      return yield* corrupt(file, 0, `drained marker ${text.trim()} is not {segment, offset}`);
    }
    return { segment, offset };
  });
}

/** Replaces the drained marker durably. */
export function writeDrained(
  dir: string,
  position: WalPosition,
): Effect.Effect<void, WorldstreamError> {
  return io(
    `write ${dir}/${DRAINED_FILE}`,
    () => replaceFileDurably(`${dir}/${DRAINED_FILE}`, encoder.encode(JSON.stringify(position))),
  );
}

// ---------------------------------------------------------------------------------------------
// Helpers

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A frame's payload as a WAL record, or what is wrong with it. */
export function parsePayload(payload: Uint8Array): WalRecord | string {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch {
    return "payload is not UTF-8";
  }
  return parseWalRecord(text);
}

function checkpointKey(packKey: string, outputId: string): string {
  return `${packKey}\u0000${outputId}`;
}

/** The WAL's newest position of one output, and whether a reset set it (see WalCheckpoint). */
interface IndexedCheckpoint {
  readonly record: WalRecord;
  readonly body: CheckpointBody;
  readonly reset: boolean;
}

function noteCheckpoint(index: Map<string, IndexedCheckpoint>, record: WalRecord): void {
  const body = record.body as CheckpointBody | CheckpointResetBody;
  const key = checkpointKey(body.pack_key, body.output_id);
  const known = index.get(key);
  if (record.kind === "checkpoint_reset") {
    // A reset wins whatever it replaces, backwards too: records are noted in WAL order.
    const { previous: _, actor: __, ...position } = body as CheckpointResetBody;
    index.set(key, { record, body: position, reset: true });
    return;
  }
  // At an equal sequence the later record wins: it has paid the receipt the earlier one owed.
  // Checkpoints after a reset go forward from it and keep its mark: they are newer than Postgres.
  if (known === undefined || known.body.last_seq <= body.last_seq) {
    index.set(key, { record, body: body as CheckpointBody, reset: known?.reset ?? false });
  }
}

/** The bytes of `parts` end to end (a single part as it is, not copied). */
export function concat(parts: ReadonlyArray<Uint8Array>): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function readRange(
  file: string,
  offset: number,
  length: number,
): Effect.Effect<Uint8Array, WorldstreamError> {
  return io(`read ${file}`, async () => {
    const handle = await Deno.open(file, { read: true });
    try {
      await handle.seek(offset, Deno.SeekMode.Start);
      const out = new Uint8Array(length);
      let at = 0;
      while (at < length) {
        const n = await handle.read(out.subarray(at));
        if (n === null) throw new Error(`unexpected end of file at offset ${offset + at}`);
        at += n;
      }
      return out;
    } finally {
      handle.close();
    }
  });
}

/** Runs a file operation of the WAL; a failure is WAL_IO_FAILED naming `what` and the cause. */
export function io<A>(what: string, f: () => Promise<A>): Effect.Effect<A, WorldstreamError> {
  return Effect.tryPromise({
    try: f,
    catch: (e) => fail("WAL_IO_FAILED", `WAL could not ${what}: ${firstLine(e)}`),
  });
}

function brokenBy(file: string): WorldstreamError {
  return fail(
    "WAL_IO_FAILED",
    `WAL is unusable after a failed write or fsync of ${file}; restart to recover`,
  );
}

function corrupt(
  file: string,
  offset: number,
  problem: string,
): Effect.Effect<never, WorldstreamError> {
  return Effect.fail(fail("WAL_CORRUPT", `WAL ${file} is corrupt at offset ${offset}: ${problem}`));
}

/** WAL_CORRUPT for damage to acknowledged records, with the commands that deal with it. */
function damaged(
  dir: string,
  file: string,
  offset: number,
  problem: string,
): Effect.Effect<never, WorldstreamError> {
  return Effect.fail(fail(
    "WAL_CORRUPT",
    `WAL segment ${file} is corrupt at offset ${offset}: ${problem}. Nothing was sent. ` +
      `See the damage with \`worldstream wal inspect --dir ${dir}\`; ` +
      `\`worldstream wal salvage --dir ${dir}\` keeps every intact record and moves the damaged ` +
      `segment to ${dir}/salvaged/`,
  ));
}

function closed(dir: string): WorldstreamError {
  return fail("WAL_CLOSED", `WAL in ${dir} is closed`);
}

function quotaExceeded(bytes: number, state: WalState, quota: number): WorldstreamError {
  return fail(
    "WAL_QUOTA_EXCEEDED",
    `WAL quota exceeded: ${state.undrainedBytes} undrained bytes used of a ${quota}-byte quota, ` +
      `an append of ${bytes} bytes does not fit (drain to Postgres to make room)`,
  );
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

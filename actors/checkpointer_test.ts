import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Layer } from "effect";
import { TestClock } from "effect/testing";
import { signerFromEnv } from "../core/receipt_keys.ts";
import { RECEIPT_KEY_ENV } from "../core/receipt_keys.ts";
import { pgTest, tempDir } from "../stores/postgres_testing.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { Receipts } from "../stores/receipts.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import { Wal } from "./wal/writer.ts";
import { effectiveCheckpoint, resumePoint, writeToPostgres } from "./wal/drain.ts";
import { loadStoredCheckpoint } from "../stores/checkpoints.ts";
import { readFrames, segmentSeq } from "../stores/wal_format.ts";
import {
  type CheckpointBody,
  parseWalRecord,
  type WalRecord,
  walRecord,
} from "../stores/wal_records.ts";
import { Checkpointer, type DeliveryCounts } from "./checkpointer.ts";
import { Journal } from "./journal.ts";

// The checkpointer journals an advance with the WAL's next group commit, not on a timer. Its
// layer runs on a TestClock that is never moved, so any wait on a timer would never end: the
// records it wrote carry that clock's time (the epoch), which shows the flush ran on it.

const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "checkpointer-test-hmac-key-0123456789abcdef" };
const SCOPE = "pack|run";
const OUTPUT = "out";
// A real-time limit for an advance, so a checkpointer that waits on a timer fails, not hangs.
const DEADLINE = "5 seconds";

function at(seq: number): ViewPosition {
  return {
    seq,
    filename: "data/part-0.parquet",
    file_row_number: seq,
    ts_utc: "2026-01-01T00:00:00.000000Z",
  };
}

function counts(admitted: number): DeliveryCounts {
  return { admitted, duplicate: 0, quarantined: 0, deadLettered: 0 };
}

/** Every record in the WAL folder's segments, read from disk with no WAL open on them. */
async function onDisk(walDir: string): Promise<Array<WalRecord>> {
  const names = (await Array.fromAsync(Deno.readDir(walDir))).map((e) => e.name)
    .filter((n) => segmentSeq(n) !== undefined).sort();
  const decoder = new TextDecoder();
  const out: Array<WalRecord> = [];
  for (const name of names) {
    const scan = readFrames(
      await Deno.readFile(join(walDir, name)),
      0,
      (p) => parseWalRecord(decoder.decode(p)),
    );
    out.push(...scan.frames.map((f) => f.value));
  }
  return out;
}

/** A WAL in a temporary folder, the real journal over it and a checkpointer on a still TestClock. */
const services = Effect.gen(function* () {
  yield* migrate;
  const walDir = join(yield* tempDir, "wal");
  const signer = yield* signerFromEnv(HMAC_ENV);
  const built = yield* Layer.build(
    Checkpointer.layer().pipe(
      Layer.provide(TestClock.layer()),
      Layer.provideMerge(Journal.layer(signer)),
      Layer.provideMerge(Receipts.layer(signer)),
      Layer.provideMerge(Wal.layer({ dir: walDir })),
    ),
  );
  return {
    walDir,
    wal: Context.get(built, Wal),
    checkpointer: Context.get(built, Checkpointer),
    receipts: Context.get(built, Receipts),
  };
});

pgTest(
  "an advance is durable in the WAL when it returns, one group commit later, with no timer tick",
  () =>
    Effect.gen(function* () {
      const { walDir, wal, checkpointer } = yield* services;
      yield* checkpointer.register(SCOPE, OUTPUT);
      yield* checkpointer.advance(SCOPE, OUTPUT, at(41), counts(42)).pipe(
        Effect.timeout(DEADLINE),
      );

      // Straight from the segment files: what a process started after a SIGKILL now would read.
      const records = yield* Effect.promise(() => onDisk(walDir));
      const checkpoints = records.filter((r) => r.kind === "checkpoint");
      assert.equal(checkpoints.length, 1);
      assert.equal((checkpoints[0].body as CheckpointBody).last_seq, 41);
      assert.equal(checkpoints[0].at, new Date(0).toISOString(), "flushed on the still TestClock");
      const receipts = records.filter((r) => r.kind === "receipt");
      assert.equal(receipts.length, 1, "the delivery receipt lands in the same append");
      assert.deepEqual(
        (receipts[0].body as { detail: Record<string, unknown> }).detail.counts,
        { ADMIT: 42, DUPLICATE: 0, QUARANTINE: 0 },
      );
      // And where the runtime would resume: the later of Postgres (nothing yet) and the WAL.
      const resume = yield* effectiveCheckpoint(SCOPE, OUTPUT).pipe(
        Effect.provideService(Wal, wal),
      );
      assert.equal(resume?.seq, 41);

      yield* checkpointer.advance(SCOPE, OUTPUT, at(99), counts(100)).pipe(
        Effect.timeout(DEADLINE),
      );
      const again = yield* effectiveCheckpoint(SCOPE, OUTPUT).pipe(Effect.provideService(Wal, wal));
      assert.equal(again?.seq, 99, "each advance reaches the WAL without a tick in between");
    }),
  { only: "pglite" },
);

pgTest(
  "advances arriving faster than fsyncs coalesce: at most one checkpoint per output per group commit",
  () =>
    Effect.gen(function* () {
      const { walDir, wal, checkpointer } = yield* services;
      const acks = 200;
      for (const output of ["a", "b"]) yield* checkpointer.register(SCOPE, output);
      // Two lanes acknowledge 200 batches each, as fast as they can, all at once.
      yield* Effect.forEach(
        Array.from({ length: acks }, (_, i) => i),
        (i) =>
          Effect.all([
            checkpointer.advance(SCOPE, "a", at(i), counts(i + 1)),
            checkpointer.advance(SCOPE, "b", at(i), counts(i + 1)),
          ], { concurrency: 2 }),
        { concurrency: "unbounded" },
      ).pipe(Effect.timeout(DEADLINE));
      // The run's end: the final flush pays the receipts the coalesced checkpoints owe.
      yield* checkpointer.flush;

      const records = yield* Effect.promise(() => onDisk(walDir));
      const stats = yield* wal.stats;
      for (const output of ["a", "b"]) {
        const mine = records.filter((r) =>
          r.kind === "checkpoint" && (r.body as CheckpointBody).output_id === output
        ).map((r) => (r.body as CheckpointBody).last_seq);
        assert.ok(mine.length <= stats.fsyncs, `${output}: ${mine.length} checkpoints > fsyncs`);
        assert.ok(
          mine.length < acks / 10,
          `${output}: ${mine.length} checkpoints for ${acks} acks`,
        );
        assert.equal(mine[mine.length - 1], acks - 1, `${output}: the last advance is durable`);
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `${output}: only forward`);

        // The delivery receipts still cover every event once, in order.
        const details = records.filter((r) =>
          r.kind === "receipt" && (r.body as { output_id?: string }).output_id === output
        ).map((r) => (r.body as { detail: { sequence_from: number; sequence_to: number } }).detail);
        let next = 0;
        for (const d of details) {
          assert.equal(d.sequence_from, next, `${output}: delivery receipts leave a gap`);
          next = d.sequence_to + 1;
        }
        assert.equal(next, acks);
        // On a still clock: the first flush's receipt, then at most one at the end (receipts
        // coalesce to one per output per second while checkpoints ride every group commit).
        assert.ok(details.length <= 2, `${output}: ${details.length} delivery receipts`);
      }
    }),
  { only: "pglite" },
);

pgTest(
  "a checkpoint journaled before its coalesced receipt owes it; the resumed lane pays it, in the WAL and in Postgres",
  () =>
    Effect.gen(function* () {
      const { walDir, wal, checkpointer, receipts } = yield* services;
      const drain = (records: ReadonlyArray<WalRecord>) =>
        writeToPostgres(records).pipe(Effect.provideService(Receipts, receipts));
      yield* checkpointer.register(SCOPE, OUTPUT);
      // The first advance gets its receipt; the second, on a still clock, only a checkpoint.
      yield* checkpointer.advance(SCOPE, OUTPUT, at(41), counts(42)).pipe(Effect.timeout(DEADLINE));
      yield* checkpointer.advance(SCOPE, OUTPUT, at(99), { ...counts(100), quarantined: 3 }).pipe(
        Effect.timeout(DEADLINE),
      );
      const owed = { from_seq: 42, admitted: 58, duplicate: 0, quarantined: 3, dead_lettered: 0 };
      // What a process started after a SIGKILL here reads: from the WAL, then from Postgres.
      const resume = yield* resumePoint(SCOPE, OUTPUT).pipe(Effect.provideService(Wal, wal));
      assert.deepEqual(resume, { position: at(99), owed });
      yield* drain(yield* Effect.promise(() => onDisk(walDir)));
      assert.deepEqual(yield* loadStoredCheckpoint(SCOPE, OUTPUT), { position: at(99), owed });

      // The restarted lane registers with what it owes; it sends nothing more (the view ended),
      // and the run's final flush writes the owed receipt and a checkpoint that owes nothing.
      yield* checkpointer.register(SCOPE, OUTPUT, resume!.position, resume!.owed);
      yield* checkpointer.flush;
      const records = yield* Effect.promise(() => onDisk(walDir));
      const details = records.filter((r) => r.kind === "receipt").map((r) =>
        (r.body as { detail: { sequence_from: number; sequence_to: number; counts: unknown } })
          .detail
      );
      assert.deepEqual(
        details.map((d) => [d.sequence_from, d.sequence_to, d.counts]),
        [
          [0, 41, { ADMIT: 42, DUPLICATE: 0, QUARANTINE: 0 }],
          [42, 99, { ADMIT: 58, DUPLICATE: 0, QUARANTINE: 3 }],
        ],
        "the receipts cover every delivered event once, with its answers",
      );
      const paid = yield* resumePoint(SCOPE, OUTPUT).pipe(Effect.provideService(Wal, wal));
      assert.deepEqual(paid, { position: at(99), owed: undefined });
      yield* drain(records);
      assert.deepEqual(yield* loadStoredCheckpoint(SCOPE, OUTPUT), {
        position: at(99),
        owed: undefined,
      });
    }),
);

pgTest(
  "a checkpoint reset wins over a higher checkpoint, in the WAL before the drain, in Postgres after it, and after a reopen; the checkpointer forgets the old position it still owed a receipt for",
  () =>
    Effect.gen(function* () {
      const { walDir, wal, checkpointer, receipts } = yield* services;
      const drain = (records: ReadonlyArray<WalRecord>) =>
        writeToPostgres(records).pipe(Effect.provideService(Receipts, receipts));
      const resume = resumePoint(SCOPE, OUTPUT).pipe(Effect.provideService(Wal, wal));
      yield* checkpointer.register(SCOPE, OUTPUT);
      // 41 with its receipt, then 99 on the same still clock: no receipt due yet, so 99 is
      // journaled owing one, and the checkpointer keeps it for the final flush (the run's end, or
      // the runtime's shutdown) to journal again with that receipt. No final flush comes here: as
      // when a run's final flush failed, or the run is still streaming.
      yield* checkpointer.advance(SCOPE, OUTPUT, at(41), counts(42)).pipe(
        Effect.timeout(DEADLINE),
      );
      yield* checkpointer.advance(SCOPE, OUTPUT, at(99), counts(100)).pipe(
        Effect.timeout(DEADLINE),
      );
      assert.deepEqual((yield* resume)?.owed?.from_seq, 42, "99 owes the receipt from 42");
      yield* drain(yield* Effect.promise(() => onDisk(walDir)));
      assert.equal((yield* loadStoredCheckpoint(SCOPE, OUTPUT))?.position.seq, 99);

      // The reset, journaled but not drained: Postgres still says 99, the WAL's reset wins.
      const reset = walRecord("checkpoint_reset", {
        pack_key: SCOPE,
        output_id: OUTPUT,
        last_seq: 9,
        last_file: "data/part-0.parquet",
        last_row_index: 9,
        last_ts_utc: "2026-01-01T00:00:00.000000Z",
        previous: {
          last_seq: 99,
          last_file: "data/part-0.parquet",
          last_row_index: 99,
          last_ts_utc: "2026-01-01T00:00:00.000000Z",
        },
        actor: "user:operator",
      }, new Date(0));
      yield* wal.append([reset]);
      yield* checkpointer.forget(SCOPE, OUTPUT);
      assert.deepEqual(yield* resume, { position: at(9), owed: undefined });
      assert.equal((yield* loadStoredCheckpoint(SCOPE, OUTPUT))?.position.seq, 99);
      // The final flush journals nothing the checkpointer held (99 and its receipt) over it.
      yield* checkpointer.flush;
      assert.deepEqual(yield* resume, { position: at(9), owed: undefined });

      // The lane after the reset goes forward from it: 12 wins over the reset's 9 and over 99.
      yield* checkpointer.register(SCOPE, OUTPUT, at(9));
      yield* checkpointer.advance(SCOPE, OUTPUT, at(12), counts(3)).pipe(Effect.timeout(DEADLINE));
      assert.equal((yield* resume)?.position.seq, 12);

      // Drained in one batch with the checkpoint of 99 before it (a batch copied again after a
      // crash): the reset applies in WAL order, then 12 forward from it.
      const all = yield* Effect.promise(() => onDisk(walDir));
      yield* drain(all);
      const stored = yield* loadStoredCheckpoint(SCOPE, OUTPUT);
      assert.equal(stored?.position.seq, 12);
      yield* drain(all);
      assert.equal((yield* loadStoredCheckpoint(SCOPE, OUTPUT))?.position.seq, 12);

      // A WAL reopened on the undrained records still lets the reset side win.
      yield* Effect.scoped(Effect.gen(function* () {
        const again = yield* Layer.build(Wal.layer({ dir: `${walDir}-copy` }));
        yield* Context.get(again, Wal).append(all);
      }));
      const reopened = yield* Layer.build(Wal.layer({ dir: `${walDir}-copy` }));
      const fromWal = yield* Context.get(reopened, Wal).checkpoint(SCOPE, OUTPUT);
      assert.deepEqual([fromWal?.body.last_seq, fromWal?.reset], [12, true]);
    }),
  { only: "pglite" },
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Logger } from "effect";
import { GENESIS, makeReceiptChain } from "../../core/receipt_chain.ts";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../../core/receipt_keys.ts";
import { fail } from "../../schemas/errors.ts";
import { readDrainedHead, recordingDrainedHead } from "./drained_head.ts";
import { failure, tempDir, unreachablePostgres } from "../../stores/postgres_testing.ts";
import { Wal } from "./writer.ts";
import { effectiveCheckpoint } from "./drain.ts";
import { checkpointRecord, receiptRecord, type WalRecord } from "../../stores/wal_records.ts";

const T0 = new Date("2026-03-01T12:00:00.000Z");
const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "wal-drain-test-hmac-key-0123456789" };

const position = (seq: number) => ({
  seq,
  filename: "part-0.parquet",
  file_row_number: seq,
  ts_utc: `2026-01-01T00:00:0${seq}.000000Z`,
});

Deno.test("with Postgres unreachable an output resumes from the WAL's checkpoint, and the log says degraded", async () => {
  const warnings: Array<string> = [];
  const capture = Logger.layer([
    Logger.make((o) => {
      if (o.logLevel === "Warn") warnings.push(String((o.message as ReadonlyArray<unknown>)[0]));
    }),
  ]);
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* tempDir;
      yield* Effect.gen(function* () {
        yield* (yield* Wal).append([checkpointRecord("pack", "out", position(5), T0)]);
        assert.deepEqual(yield* effectiveCheckpoint("pack", "out"), position(5));
        assert.equal(yield* effectiveCheckpoint("pack", "other"), undefined);
      }).pipe(Effect.provide(Wal.layer({ dir: join(dir, "wal") })));
    }).pipe(Effect.provide(unreachablePostgres()), Effect.provide(capture)),
  ));
  assert.ok(
    warnings.includes("degraded: Postgres unreachable; resuming from the WAL's checkpoint"),
    warnings.join("\n"),
  );
});

Deno.test("a drained batch leaves the head of its last receipt in the drained-head file, and a failed one leaves it alone", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const dir = yield* tempDir;
    const file = join(dir, "drained_head.json");
    const chain = yield* makeReceiptChain(GENESIS, yield* signerFromEnv(HMAC_ENV));
    const seal = (i: number) =>
      chain.append([{
        kind: "delivery",
        status: "pass",
        rationale: `batch ${i}`,
        inputs_digest: String(i).padStart(64, "0"),
        actor: "svc:test",
      }]).pipe(Effect.map(([r]) => r));
    const [first, second] = [yield* seal(1), yield* seal(2)];
    const batch: Array<WalRecord> = [receiptRecord(first), receiptRecord(second)];
    const written: Array<number> = [];
    yield* recordingDrainedHead(
      file,
      (records) => Effect.sync(() => void written.push(records.length)),
    )(batch);
    assert.deepEqual(written, [2]);
    assert.deepEqual(yield* readDrainedHead(file), { seq: second.seq, hash: second.hash });

    const third = yield* seal(3);
    const error = yield* failure(
      recordingDrainedHead(file, () => Effect.fail(fail("PG_UNAVAILABLE", "down")))([
        receiptRecord(third),
      ]),
    );
    assert.equal(error.reason, "PG_UNAVAILABLE");
    assert.deepEqual(yield* readDrainedHead(file), { seq: second.seq, hash: second.hash });
    // A batch without receipts leaves the head where it was.
    yield* recordingDrainedHead(file, () => Effect.void)([
      checkpointRecord("p", "o", position(1), T0),
    ]);
    assert.deepEqual(yield* readDrainedHead(file), { seq: second.seq, hash: second.hash });
    assert.equal(yield* readDrainedHead(join(dir, "missing.json")), undefined);
  })));
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Layer } from "effect";
import { TestClock } from "effect/testing";
import { sha256Hex } from "../core/hash.ts";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../core/receipt_keys.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { failure, pgTest, tempDir, unreachablePostgres } from "../stores/postgres_testing.ts";
import { isSettled, ReadyLedger, readyRecordId } from "./ready_ledger.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "./wal/writer.ts";
import { writeToPostgres } from "./wal/drain.ts";

const MESSAGE = "a".repeat(64);
const OTHER = "b".repeat(64);
const T0 = new Date("2026-01-02T10:15:30.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "ready-ledger-test-hmac-key-0123456789" };

type Ledger = ReadyLedger["Service"];

/**
 * Runs `body` with a ledger whose summary file and WAL are in `dir`, over the Postgres in
 * context; `drain` copies the WAL into that Postgres. The ledger and its WAL close afterwards,
 * so a second call on the same `dir` is a restart.
 */
function ledgerAt<A, E, R>(
  dir: string,
  body: (ledger: Ledger, drain: Effect.Effect<number, unknown, Postgres>) => Effect.Effect<A, E, R>,
) {
  return Effect.scoped(Effect.gen(function* () {
    const services = yield* Layer.build(
      ReadyLedger.layer({ file: join(dir, "ready_ledger.ndjson"), seedTimeoutMs: 2000 }).pipe(
        Layer.provideMerge(Wal.layer({ dir: join(dir, "wal") })),
      ),
    );
    const wal = Context.get(services, Wal);
    const signer = yield* signerFromEnv(HMAC_ENV);
    const drain = wal.drainOnce(writeToPostgres).pipe(Effect.provide(Receipts.layer(signer)));
    return yield* body(Context.get(services, ReadyLedger), drain);
  }));
}

/** A test body with a migrated database and a fresh ledger. */
function withLedger<A, E>(
  body: (
    ledger: Ledger,
    drain: Effect.Effect<number, unknown, Postgres>,
  ) => Effect.Effect<A, E, Postgres>,
) {
  return () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      return yield* ledgerAt(dir, body);
    });
}

function rowCount(messageId: string) {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const [row] = yield* pg.query<{ n: number }>(
      "select count(*)::int as n from ws_ready_ledger where message_id = $1",
      [messageId],
    );
    return row.n;
  });
}

pgTest(
  "a message never seen has no decision and is not streamed",
  withLedger((ledger) =>
    Effect.gen(function* () {
      assert.equal(yield* ledger.latest(MESSAGE), undefined);
      assert.equal(yield* ledger.isStreamed(MESSAGE), false);
      assert.equal(yield* ledger.seeded, true);
    })
  ),
  { migrated: true },
);

pgTest(
  "a STREAMED message reads as streamed and settled, and reaches Postgres when the WAL drains",
  withLedger((ledger, drain) =>
    Effect.gen(function* () {
      const recorded = yield* ledger.record({
        message_id: MESSAGE,
        status: "STREAMED",
        platform_run_id: "platform_20260102T101530Z",
        scenario_run_id: "0".repeat(32),
        detail: { emitted: 200 },
        at: T0,
      });
      assert.deepEqual(recorded, {
        record_id: sha256Hex(`${MESSAGE}|STREAMED|1|2026-01-02T10:15:30.000Z`),
        attempt: 1,
        inserted: true,
      });
      assert.equal(yield* ledger.isStreamed(MESSAGE), true);
      assert.equal(yield* ledger.isStreamed(OTHER), false);
      const latest = yield* ledger.latest(MESSAGE);
      assert.deepEqual(latest, {
        status: "STREAMED",
        reason: undefined,
        attempt: 1,
        attempts: 1,
        recorded_at: T0,
        platform_run_id: "platform_20260102T101530Z",
        scenario_run_id: "0".repeat(32),
      });
      assert.equal(isSettled(latest!.status), true);

      // Nothing in Postgres until the drain copies the WAL.
      assert.equal(yield* rowCount(MESSAGE), 0);
      assert.equal(yield* drain, 1);
      const pg = yield* Postgres;
      const [row] = yield* pg.query<{ detail: unknown; attempt: number; status: string }>(
        "select detail, attempt, status from ws_ready_ledger where record_id = $1",
        [recorded.record_id],
      );
      assert.deepEqual(row, { detail: { emitted: 200 }, attempt: 1, status: "STREAMED" });
    })
  ),
  { migrated: true },
);

pgTest(
  "a FAILED message may be retried, and its retry is the next attempt",
  withLedger((ledger) =>
    Effect.gen(function* () {
      yield* ledger.record({
        message_id: MESSAGE,
        status: "FAILED",
        reason: "IG_PUSH_RETRY_EXHAUSTED",
        at: T0,
      });
      const failed = yield* ledger.latest(MESSAGE);
      assert.equal(failed?.status, "FAILED");
      assert.equal(failed?.reason, "IG_PUSH_RETRY_EXHAUSTED");
      assert.equal(isSettled(failed!.status), false);
      assert.equal(yield* ledger.isStreamed(MESSAGE), false);

      const retry = yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: at(60) });
      assert.equal(retry.attempt, 2);
      const latest = yield* ledger.latest(MESSAGE);
      assert.equal(latest?.status, "STREAMED");
      assert.equal(latest?.attempts, 2);
      assert.equal(yield* ledger.isStreamed(MESSAGE), true);
    })
  ),
  { migrated: true },
);

pgTest(
  "a DEFERRED message is not done: it is neither streamed nor settled",
  withLedger((ledger) =>
    Effect.gen(function* () {
      yield* ledger.record({
        message_id: MESSAGE,
        status: "DEFERRED_DOWNSTREAM_NOT_READY",
        at: T0,
      });
      const latest = yield* ledger.latest(MESSAGE);
      assert.equal(latest?.status, "DEFERRED_DOWNSTREAM_NOT_READY");
      assert.equal(isSettled(latest!.status), false);
      assert.equal(yield* ledger.isStreamed(MESSAGE), false);
      const again = yield* ledger.record({
        message_id: MESSAGE,
        status: "DEFERRED_DOWNSTREAM_NOT_READY",
        at: at(30),
      });
      assert.equal(again.attempt, 2);
    })
  ),
  { migrated: true },
);

pgTest(
  "a redelivery after STREAMED stays streamed even though the latest row is a duplicate",
  withLedger((ledger) =>
    Effect.gen(function* () {
      yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: T0 });
      yield* ledger.record({ message_id: MESSAGE, status: "SKIPPED_DUPLICATE", at: at(5) });
      const latest = yield* ledger.latest(MESSAGE);
      assert.equal(latest?.status, "SKIPPED_DUPLICATE");
      assert.equal(latest?.attempts, 2);
      assert.equal(yield* ledger.isStreamed(MESSAGE), true);
    })
  ),
  { migrated: true },
);

pgTest(
  "recording the same decision twice writes one row",
  withLedger((ledger, drain) =>
    Effect.gen(function* () {
      const decision = { message_id: MESSAGE, status: "FAILED", reason: "X", at: T0 } as const;
      const first = yield* ledger.record(decision);
      const second = yield* ledger.record(decision);
      assert.deepEqual(second, { ...first, inserted: false });

      // A decision whose attempt the caller chose; recording it again changes nothing either.
      const replay = { message_id: OTHER, status: "STREAMED", attempt: 3, at: T0 } as const;
      assert.equal((yield* ledger.record(replay)).inserted, true);
      assert.deepEqual(yield* ledger.record(replay), {
        record_id: readyRecordId(OTHER, "STREAMED", 3, T0),
        attempt: 3,
        inserted: false,
      });
      assert.equal(yield* drain, 2);
      assert.equal(yield* rowCount(MESSAGE), 1);
      assert.equal(yield* rowCount(OTHER), 1);
    })
  ),
  { migrated: true },
);

pgTest(
  "decisions at one instant are ordered by attempt, and the time defaults to the Clock",
  withLedger((ledger) =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0.getTime());
      yield* ledger.record({ message_id: MESSAGE, status: "FAILED" });
      yield* ledger.record({ message_id: MESSAGE, status: "DEFERRED_DOWNSTREAM_NOT_READY" });
      yield* ledger.record({ message_id: MESSAGE, status: "STREAMED" });
      const latest = yield* ledger.latest(MESSAGE);
      assert.equal(latest?.status, "STREAMED");
      assert.equal(latest?.attempt, 3);
      assert.deepEqual(latest?.recorded_at, T0);
    }).pipe(Effect.provide(TestClock.layer()))
  ),
  { migrated: true },
);

pgTest(
  "a decision with an unknown status or a bad attempt is refused",
  withLedger((ledger, drain) =>
    Effect.gen(function* () {
      const unknown = yield* failure(
        ledger.record({ message_id: MESSAGE, status: "DONE" as "STREAMED", at: T0 }),
      );
      assert.equal(unknown.reason, "READY_LEDGER_INVALID");
      const attempt = yield* failure(
        ledger.record({ message_id: MESSAGE, status: "STREAMED", attempt: 0, at: T0 }),
      );
      assert.equal(attempt.reason, "READY_LEDGER_INVALID");
      assert.equal(yield* drain, 0, "nothing was journaled");
      assert.equal(yield* ledger.latest(MESSAGE), undefined);
    })
  ),
  { migrated: true },
);

pgTest(
  "the ledger in Postgres is append-only",
  withLedger((ledger, drain) =>
    Effect.gen(function* () {
      yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: T0 });
      yield* drain;
      const pg = yield* Postgres;
      const error = yield* failure(
        pg.query("update ws_ready_ledger set status = 'FAILED' where message_id = $1", [MESSAGE]),
      );
      assert.match(error.message, /append-only/);
      assert.equal(yield* ledger.isStreamed(MESSAGE), true);
    })
  ),
  { migrated: true },
);

pgTest(
  "decisions already in Postgres are seen by a ledger with no summary of its own, and numbering goes on after them",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const before = yield* tempDir;
      yield* ledgerAt(before, (ledger, drain) =>
        Effect.gen(function* () {
          yield* ledger.record({ message_id: MESSAGE, status: "FAILED", reason: "X", at: T0 });
          yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: at(1) });
          yield* ledger.record({ message_id: OTHER, status: "FAILED", reason: "Y", at: at(2) });
          yield* drain;
        }));
      // Another runs root, the same database: the summary is seeded from Postgres.
      const fresh = yield* tempDir;
      yield* ledgerAt(fresh, (ledger) =>
        Effect.gen(function* () {
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
          assert.equal(yield* ledger.isStreamed(OTHER), false);
          const latest = yield* ledger.latest(MESSAGE);
          assert.equal(latest?.status, "STREAMED");
          assert.equal(latest?.attempts, 2);
          const next = yield* ledger.record({ message_id: OTHER, status: "STREAMED", at: at(3) });
          assert.equal(next.attempt, 2);
        }));
    }),
  { migrated: true },
);

pgTest(
  "a run that streamed with dead letters is settled and streamed, not a clean STREAMED, also when seeded from Postgres",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const before = yield* tempDir;
      yield* ledgerAt(before, (ledger, drain) =>
        Effect.gen(function* () {
          yield* ledger.record({
            message_id: MESSAGE,
            status: "STREAMED_WITH_DEAD_LETTERS",
            reason: "DEAD_LETTERED",
            detail: { emitted: 190, dead_lettered: 10 },
            at: T0,
          });
          assert.equal(isSettled("STREAMED_WITH_DEAD_LETTERS"), true, "not streamed again");
          assert.equal(yield* ledger.isStreamed(MESSAGE), true, "a redelivery is a duplicate");
          yield* drain;
        }));
      const fresh = yield* tempDir;
      yield* ledgerAt(fresh, (ledger) =>
        Effect.gen(function* () {
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
          const latest = yield* ledger.latest(MESSAGE);
          assert.equal(latest?.status, "STREAMED_WITH_DEAD_LETTERS");
          assert.equal(latest?.reason, "DEAD_LETTERED");
        }));
    }),
  { migrated: true },
);

// ---------------------------------------------------------------------------------------------
// Postgres unreachable

pgTest(
  "with Postgres unreachable after a restart, a READY already streamed is still streamed and a new one is new",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      // Streamed and drained while Postgres was up: the WAL no longer holds the decision.
      yield* ledgerAt(dir, (ledger, drain) =>
        Effect.gen(function* () {
          yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: T0 });
          assert.equal(yield* drain, 1);
        }));
      yield* ledgerAt(dir, (ledger) =>
        Effect.gen(function* () {
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
          assert.equal(yield* ledger.isStreamed(OTHER), false, "seeded: an unknown message is new");
          const duplicate = yield* ledger.record({
            message_id: MESSAGE,
            status: "SKIPPED_DUPLICATE",
            at: at(5),
          });
          assert.equal(duplicate.attempt, 2);
          assert.equal((yield* ledger.latest(MESSAGE))?.status, "SKIPPED_DUPLICATE");
        }).pipe(Effect.provide(unreachablePostgres())));
    }),
  { only: "pglite", migrated: true },
);

pgTest(
  "decisions made while Postgres is unreachable reach it exactly once when it answers again",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      yield* ledgerAt(dir, () => Effect.void); // seeded while up
      yield* ledgerAt(dir, (ledger) =>
        Effect.gen(function* () {
          yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: T0 });
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
          yield* ledger.record({ message_id: MESSAGE, status: "SKIPPED_DUPLICATE", at: at(1) });
        }).pipe(Effect.provide(unreachablePostgres())));
      // Postgres is back: the next runtime drains what the WAL kept, twice over to be sure.
      yield* ledgerAt(dir, (ledger, drain) =>
        Effect.gen(function* () {
          assert.equal(yield* drain, 2);
          assert.equal(yield* drain, 0);
          assert.equal(yield* rowCount(MESSAGE), 2);
          assert.equal((yield* ledger.latest(MESSAGE))?.attempts, 2);
        }));
    }),
  { only: "pglite", migrated: true },
);

Deno.test("a ledger never seeded and cut off from Postgres defers judgement on a message it does not know, but still records", async () => {
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* tempDir;
      yield* ledgerAt(dir, (ledger) =>
        Effect.gen(function* () {
          assert.equal(yield* ledger.seeded, false);
          const unknown = yield* failure(ledger.isStreamed(MESSAGE));
          assert.equal(unknown.reason, "READY_LEDGER_UNAVAILABLE");
          assert.equal((yield* failure(ledger.latest(MESSAGE))).reason, "READY_LEDGER_UNAVAILABLE");
          // A decision is journaled all the same, and a STREAMED one is certain.
          const recorded = yield* ledger.record({
            message_id: MESSAGE,
            status: "STREAMED",
            at: T0,
          });
          assert.equal(recorded.inserted, true);
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
        }));
      // The summary file is lost; the WAL, still undrained, restores what it held.
      yield* Effect.promise(() => Deno.remove(join(dir, "ready_ledger.ndjson")));
      yield* ledgerAt(dir, (ledger) =>
        Effect.gen(function* () {
          assert.equal(yield* ledger.isStreamed(MESSAGE), true);
        }));
    }).pipe(Effect.provide(unreachablePostgres())),
  ));
});

import assert from "node:assert/strict";
import { Effect } from "effect";
import { TestClock } from "effect/testing";
import { sha256Hex } from "../core/hash.ts";
import { Postgres } from "./postgres.ts";
import { migrate } from "./postgres_migrate.ts";
import { failure, pgTest } from "./postgres_testing.ts";
import { isSettled, ReadyLedger, readyRecordId } from "./ready_ledger.ts";

const MESSAGE = "a".repeat(64);
const OTHER = "b".repeat(64);
const T0 = new Date("2026-01-02T10:15:30.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** A test body with a migrated database and the ledger. */
function withLedger<A, E>(
  body: (ledger: ReadyLedger["Service"]) => Effect.Effect<A, E, Postgres>,
) {
  return () =>
    Effect.gen(function* () {
      yield* migrate;
      return yield* body(yield* ReadyLedger);
    }).pipe(Effect.provide(ReadyLedger.layer));
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
    })
  ),
);

pgTest(
  "a STREAMED message reads as streamed and settled",
  withLedger((ledger) =>
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

      const pg = yield* Postgres;
      const [row] = yield* pg.query<{ detail: unknown }>(
        "select detail from ws_ready_ledger where record_id = $1",
        [recorded.record_id],
      );
      assert.deepEqual(row.detail, { emitted: 200 });
    })
  ),
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
);

pgTest(
  "recording the same decision twice writes one row",
  withLedger((ledger) =>
    Effect.gen(function* () {
      const decision = { message_id: MESSAGE, status: "FAILED", reason: "X", at: T0 } as const;
      const first = yield* ledger.record(decision);
      const second = yield* ledger.record(decision);
      assert.deepEqual(second, { ...first, inserted: false });
      assert.equal(yield* rowCount(MESSAGE), 1);

      // A drained WAL record carries its attempt; replaying it changes nothing either.
      const replay = { message_id: OTHER, status: "STREAMED", attempt: 3, at: T0 } as const;
      assert.equal((yield* ledger.record(replay)).inserted, true);
      assert.deepEqual(yield* ledger.record(replay), {
        record_id: readyRecordId(OTHER, "STREAMED", 3, T0),
        attempt: 3,
        inserted: false,
      });
      assert.equal(yield* rowCount(OTHER), 1);
    })
  ),
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
);

pgTest(
  "a decision with an unknown status or a bad attempt is refused",
  withLedger((ledger) =>
    Effect.gen(function* () {
      const unknown = yield* failure(
        ledger.record({ message_id: MESSAGE, status: "DONE" as "STREAMED", at: T0 }),
      );
      assert.equal(unknown.reason, "READY_LEDGER_INVALID");
      const attempt = yield* failure(
        ledger.record({ message_id: MESSAGE, status: "STREAMED", attempt: 0, at: T0 }),
      );
      assert.equal(attempt.reason, "READY_LEDGER_INVALID");
      assert.equal(yield* rowCount(MESSAGE), 0);
    })
  ),
);

pgTest(
  "the ledger is append-only",
  withLedger((ledger) =>
    Effect.gen(function* () {
      yield* ledger.record({ message_id: MESSAGE, status: "STREAMED", at: T0 });
      const pg = yield* Postgres;
      const error = yield* failure(
        pg.query("update ws_ready_ledger set status = 'FAILED' where message_id = $1", [MESSAGE]),
      );
      assert.match(error.message, /append-only/);
      assert.equal(yield* ledger.isStreamed(MESSAGE), true);
    })
  ),
);

import assert from "node:assert/strict";
import { Effect } from "effect";
import { TestClock } from "effect/testing";
import { AuditLog, auditRecordId, READY_AUDIT_KINDS } from "./audit_log.ts";
import { Postgres } from "./postgres.ts";
import { migrate } from "./postgres_migrate.ts";
import { failure, pgTest } from "./postgres_testing.ts";

const T0 = new Date("2026-01-02T10:15:30.000Z");

function withAudit<A, E>(body: (audit: AuditLog["Service"]) => Effect.Effect<A, E, Postgres>) {
  return () =>
    Effect.gen(function* () {
      yield* migrate;
      return yield* body(yield* AuditLog);
    }).pipe(Effect.provide(AuditLog.layer));
}

const events = Effect.gen(function* () {
  const pg = yield* Postgres;
  return yield* pg.query<Record<string, unknown>>(
    "select record_id, kind, run_key, output_id, at, detail from ws_audit_events order by at",
  );
});

pgTest(
  "an audit event is stored with its kind, scope, time and detail",
  withAudit((audit) =>
    Effect.gen(function* () {
      const detail = { message_id: "m1", file: "/bus/m1.json" };
      const recorded = yield* audit.record(READY_AUDIT_KINDS.seen, detail, {
        run_key: "platform_20260102T101530Z",
        at: T0,
      });
      assert.equal(recorded.inserted, true);
      assert.equal(
        recorded.record_id,
        auditRecordId("RUN_READY_SEEN", detail, { run_key: "platform_20260102T101530Z", at: T0 }),
      );
      assert.deepEqual(yield* events, [{
        record_id: recorded.record_id,
        kind: "RUN_READY_SEEN",
        run_key: "platform_20260102T101530Z",
        output_id: null,
        at: T0,
        detail,
      }]);
    })
  ),
);

pgTest(
  "writing the same event twice leaves one row; the time defaults to the Clock",
  withAudit((audit) =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0.getTime());
      const first = yield* audit.record("RUN_READY_REJECTED", { reason: "READY_INVALID" });
      const second = yield* audit.record("RUN_READY_REJECTED", { reason: "READY_INVALID" });
      assert.deepEqual(second, { ...first, inserted: false });
      const rows = yield* events;
      assert.equal(rows.length, 1);
      assert.deepEqual(rows[0].at, T0);
    }).pipe(Effect.provide(TestClock.layer()))
  ),
);

pgTest(
  "a kind that is not UPPER_SNAKE is refused",
  withAudit((audit) =>
    Effect.gen(function* () {
      const error = yield* failure(audit.record("run ready seen", {}, { at: T0 }));
      assert.equal(error.reason, "AUDIT_KIND_INVALID");
      assert.deepEqual(yield* events, []);
    })
  ),
);

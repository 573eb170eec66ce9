import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Layer } from "effect";
import { TestClock } from "effect/testing";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../core/receipt_keys.ts";
import { AuditLog, auditRecordId, READY_AUDIT_KINDS } from "./audit_log.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { failure, pgTest, tempDir, unreachablePostgres } from "../stores/postgres_testing.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "./wal/writer.ts";
import { writeToPostgres } from "./wal/drain.ts";

const T0 = new Date("2026-01-02T10:15:30.000Z");
const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "audit-log-test-hmac-key-0123456789" };

/**
 * Runs `body` with an audit log over a WAL in `dir`; `drain` copies the WAL into the Postgres
 * in context. The WAL closes afterwards.
 */
function auditAt<A, E, R>(
  dir: string,
  body: (
    audit: AuditLog["Service"],
    drain: Effect.Effect<number, unknown, Postgres>,
  ) => Effect.Effect<A, E, R>,
) {
  return Effect.scoped(Effect.gen(function* () {
    const services = yield* Layer.build(
      AuditLog.layer.pipe(Layer.provideMerge(Wal.layer({ dir: join(dir, "wal") }))),
    );
    const signer = yield* signerFromEnv(HMAC_ENV);
    const drain = Context.get(services, Wal).drainOnce(writeToPostgres).pipe(
      Effect.provide(Receipts.layer(signer)),
    );
    return yield* body(Context.get(services, AuditLog), drain);
  }));
}

function withAudit<A, E>(
  body: (
    audit: AuditLog["Service"],
    drain: Effect.Effect<number, unknown, Postgres>,
  ) => Effect.Effect<A, E, Postgres>,
) {
  return () =>
    Effect.gen(function* () {
      yield* migrate;
      return yield* auditAt(yield* tempDir, body);
    });
}

const events = Effect.gen(function* () {
  const pg = yield* Postgres;
  return yield* pg.query<Record<string, unknown>>(
    "select record_id, kind, run_key, output_id, at, detail from ws_audit_events order by at",
  );
});

pgTest(
  "an audit event is stored with its kind, scope, time and detail once the WAL drains",
  withAudit((audit, drain) =>
    Effect.gen(function* () {
      const detail = { message_id: "m1", file: "/bus/m1.json" };
      const recorded = yield* audit.record(READY_AUDIT_KINDS.seen, detail, {
        run_key: "platform_20260102T101530Z",
        at: T0,
      });
      assert.equal(
        recorded.record_id,
        auditRecordId("RUN_READY_SEEN", detail, { run_key: "platform_20260102T101530Z", at: T0 }),
      );
      assert.deepEqual(yield* events, [], "nothing reaches Postgres before the drain");
      assert.equal(yield* drain, 1);
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
  withAudit((audit, drain) =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0.getTime());
      const first = yield* audit.record("RUN_READY_REJECTED", { reason: "READY_INVALID" });
      const second = yield* audit.record("RUN_READY_REJECTED", { reason: "READY_INVALID" });
      assert.deepEqual(second, first);
      yield* drain;
      const rows = yield* events;
      assert.equal(rows.length, 1);
      assert.deepEqual(rows[0].at, T0);
    }).pipe(Effect.provide(TestClock.layer()))
  ),
);

pgTest(
  "a kind that is not UPPER_SNAKE is refused",
  withAudit((audit, drain) =>
    Effect.gen(function* () {
      const error = yield* failure(audit.record("run ready seen", {}, { at: T0 }));
      assert.equal(error.reason, "AUDIT_KIND_INVALID");
      assert.equal(yield* drain, 0);
      assert.deepEqual(yield* events, []);
    })
  ),
);

pgTest(
  "events recorded while Postgres is unreachable reach it once it answers",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const recorded = yield* auditAt(dir, (audit) =>
        audit.record("RUN_STARTED", { message_id: "m2", dropped: undefined }, { at: T0 })).pipe(
          Effect.provide(unreachablePostgres()),
        );
      yield* auditAt(dir, (_, drain) =>
        Effect.gen(function* () {
          assert.equal(yield* drain, 1);
          assert.equal(yield* drain, 0);
        }));
      const rows = yield* events;
      assert.deepEqual(rows.map((r) => [r.record_id, r.kind, r.detail]), [
        [recorded.record_id, "RUN_STARTED", { message_id: "m2" }],
      ]);
    }),
  { only: "pglite" },
);

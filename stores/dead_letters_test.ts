import assert from "node:assert/strict";
import { Effect, Layer } from "effect";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../core/receipt_keys.ts";
import { type DeadLetter, DeadLetters, retryReceiptId, retryRecord } from "./dead_letters.ts";
import { Postgres } from "./postgres.ts";
import { loadMigrations, migrate, migrateFrom, MIGRATIONS_DIR } from "./postgres_migrate.ts";
import { failure, pgTest, tempDir } from "./postgres_testing.ts";
import { Receipts } from "./receipts.ts";
import { writeToPostgres } from "../actors/wal/drain.ts";
import { type WalRecord, walRecord } from "./wal_records.ts";

const T0 = Date.parse("2026-03-01T12:00:00.000Z");
const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "dead-letters-test-hmac-key-012345" };
const CONTEXT = { actor: "operator:test", at: new Date(T0 + 60_000) };

/** The stores over the test database, migrated. */
function withStores<A, E>(body: Effect.Effect<A, E, DeadLetters | Postgres | Receipts>) {
  return Effect.gen(function* () {
    yield* migrate;
    const signer = yield* signerFromEnv(HMAC_ENV);
    return yield* body.pipe(
      Effect.provide(Layer.merge(DeadLetters.layer, Receipts.layer(signer))),
    );
  });
}

/** A dead-letter record as the supervisor writes one. */
function dead(
  n: number,
  options: { run?: string; output?: string; platformRun?: string } = {},
): WalRecord {
  const eventId = `event-${n}`;
  return walRecord(
    "dead_letter",
    {
      run_key: options.run ?? "run-a",
      output_id: options.output ?? "out-1",
      event_id: eventId,
      envelope: {
        event_id: eventId,
        platform_run_id: options.platformRun ?? "platform_20260301T120000Z",
        payload: { n },
      },
      attempts: 1,
      last_status: 401,
      reason: "IG_PUSH_REJECTED",
      status: "OPEN",
    },
    new Date(T0 + n),
    `dead-${n}`,
  );
}

const drain = (records: ReadonlyArray<WalRecord>) => writeToPostgres(records);

const rejected = {
  outcome: "OPEN",
  decision: null,
  requests: 2,
  lastStatus: 503,
  reason: "IG_PUSH_RETRY_EXHAUSTED",
  message: "The gate answered 503 after 2 attempts",
} as const;
const admitted = {
  outcome: "CLOSED",
  decision: "ADMIT",
  requests: 1,
  lastStatus: 200,
  reason: null,
} as const;

function found(id: string) {
  return Effect.gen(function* () {
    const letter = yield* (yield* DeadLetters).find(id);
    assert.ok(letter, `dead letter ${id} is stored`);
    return letter;
  });
}

pgTest(
  "a drained dead letter is listed open in arrival order and filtered by run, platform run and output",
  () =>
    withStores(Effect.gen(function* () {
      yield* drain([
        dead(1),
        dead(2, { output: "out-2" }),
        dead(3, { run: "run-b", platformRun: "platform_20260302T000000Z" }),
      ]);
      const store = yield* DeadLetters;
      const all = yield* store.list();
      assert.deepEqual(all.map((l) => l.event_id), ["event-1", "event-2", "event-3"]);
      assert.deepEqual(
        all.map((l) => [l.status, l.attempts, l.retries, l.last_status, l.reason]),
        Array(3).fill(["OPEN", 1, 0, 401, "IG_PUSH_REJECTED"]),
      );
      assert.deepEqual(all[0].envelope, {
        event_id: "event-1",
        platform_run_id: "platform_20260301T120000Z",
        payload: { n: 1 },
      });
      assert.equal(all[0].at.getTime(), T0 + 1);
      const ids = (filter: Parameters<DeadLetters["Service"]["list"]>[0]) =>
        store.list(filter).pipe(Effect.map((ls) => ls.map((l) => l.event_id)));
      assert.deepEqual(yield* ids({ runKey: "run-b" }), ["event-3"]);
      assert.deepEqual(yield* ids({ platformRunId: "platform_20260301T120000Z" }), [
        "event-1",
        "event-2",
      ]);
      assert.deepEqual(yield* ids({ outputId: "out-2" }), ["event-2"]);
      assert.deepEqual(yield* ids({ status: "CLOSED" }), []);
      assert.deepEqual(yield* ids({ limit: 2 }), ["event-1", "event-2"]);
      assert.deepEqual(yield* ids({ afterSeq: all[1].seq }), ["event-3"]);
      assert.equal((yield* store.find("dead-2"))?.output_id, "out-2");
      assert.equal(yield* store.find("no-such-id"), undefined);
    })),
);

pgTest(
  "a failed retry keeps the dead letter open with its attempts grown, and a later one closes it",
  () =>
    withStores(Effect.gen(function* () {
      yield* drain([dead(1)]);
      const open = yield* found("dead-1");
      yield* drain([retryRecord(open, rejected, CONTEXT)]);
      const retried = yield* found("dead-1");
      assert.deepEqual(
        pick(retried, ["status", "attempts", "retries", "last_status", "reason", "closed_at"]),
        {
          status: "OPEN",
          attempts: 3,
          retries: 1,
          last_status: 503,
          reason: "IG_PUSH_RETRY_EXHAUSTED",
          closed_at: null,
        },
      );
      assert.equal(retried.last_retry_at?.getTime(), CONTEXT.at.getTime());

      const closedAt = new Date(CONTEXT.at.getTime() + 1000);
      yield* drain([retryRecord(retried, admitted, { ...CONTEXT, at: closedAt })]);
      const closed = yield* found("dead-1");
      assert.deepEqual(
        pick(closed, [
          "status",
          "attempts",
          "retries",
          "last_status",
          "reason",
          "closed_receipt_id",
        ]),
        {
          status: "CLOSED",
          attempts: 4,
          retries: 2,
          last_status: 200,
          // Why it was dead-lettered stays on the record.
          reason: "IG_PUSH_RETRY_EXHAUSTED",
          closed_receipt_id: retryReceiptId(retried),
        },
      );
      assert.equal(closed.closed_at?.getTime(), closedAt.getTime());
      const store = yield* DeadLetters;
      assert.deepEqual((yield* store.list({ status: "OPEN" })).length, 0);
      assert.deepEqual((yield* store.list({ status: "CLOSED" })).map((l) => l.id), ["dead-1"]);
    })),
);

pgTest(
  "draining the same retries again changes nothing, and a closed dead letter is never reopened",
  () =>
    withStores(Effect.gen(function* () {
      // A dead letter and two retries in one batch: the retries apply after the insert.
      yield* drain([dead(1)]);
      const first = yield* found("dead-1");
      const records = [
        dead(1),
        retryRecord(first, rejected, CONTEXT),
        retryRecord({ ...first, retries: 1 }, admitted, CONTEXT),
      ];
      yield* drain(records);
      const once = yield* found("dead-1");
      yield* drain(records);
      yield* drain(records.slice(1));
      assert.deepEqual(yield* found("dead-1"), once);
      assert.equal(once.status, "CLOSED");
      assert.equal(once.attempts, 1 + 2 + 1);
      assert.equal(once.retries, 2);

      // A retry recorded after the close (it cannot come from the CLI, which skips closed ones)
      // goes to the history but leaves the dead letter as it is.
      yield* drain([retryRecord(once, rejected, CONTEXT)]);
      assert.deepEqual(yield* found("dead-1"), once);
      const pg = yield* Postgres;
      const history = yield* pg.query<{ retry: number; outcome: string }>(
        "select retry, outcome from ws_dead_letter_retries where dead_letter_id = $1 order by retry",
        ["dead-1"],
      );
      assert.deepEqual(history, [
        { retry: 1, outcome: "OPEN" },
        { retry: 2, outcome: "CLOSED" },
        { retry: 3, outcome: "OPEN" },
      ]);
      const erase = yield* failure(pg.query("delete from ws_dead_letter_retries"));
      assert.ok(erase.message.includes("append-only"), erase.message);
    })),
);

pgTest(
  "dead letters stored before migration 0002 are listed open, in the order they arrived",
  () =>
    Effect.gen(function* () {
      const dir = yield* tempDir;
      const [foundation, status] = yield* loadMigrations(MIGRATIONS_DIR);
      assert.equal(status.name, "0002_dead_letter_status");
      yield* Effect.promise(() =>
        Deno.writeTextFile(`${dir}/${foundation.name}.sql`, foundation.sql)
      );
      yield* migrateFrom(dir);
      const pg = yield* Postgres;
      for (const n of [1, 2]) {
        yield* pg.query(
          "insert into ws_dead_letters (record_id, run_key, output_id, event_id, envelope, " +
            "attempts, last_status, reason, at) values ($1, 'run-a', 'out-1', $2, $3, 5, 503, " +
            "'IG_PUSH_RETRY_EXHAUSTED', $4)",
          [`old-${n}`, `event-${n}`, { event_id: `event-${n}` }, new Date(T0 + n)],
        );
      }
      // withStores migrates the rest of the way (0002) before listing.
      const letters = yield* withStores(DeadLetters.use((store) => store.list()));
      assert.deepEqual(letters.map((l) => [l.id, l.status, l.retries]), [
        ["old-1", "OPEN", 0],
        ["old-2", "OPEN", 0],
      ]);
      assert.ok(letters[0].seq < letters[1].seq);
    }),
);

function pick(letter: DeadLetter, keys: ReadonlyArray<keyof DeadLetter>) {
  return Object.fromEntries(keys.map((k) => [k, letter[k]]));
}

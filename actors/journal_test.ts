import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Fiber, Layer } from "effect";
import { RECEIPT_KEY_ENV, signerFromEnv, verifierFromEnv } from "../core/receipt_keys.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { readDrainedHead, recordingDrainedHead, writeDrainedHead } from "./wal/drained_head.ts";
import type { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { failure, pgTest, tempDir, unreachablePostgres } from "../stores/postgres_testing.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "./wal/writer.ts";
import { writeToPostgres } from "./wal/drain.ts";
import { Health } from "./health.ts";
import { Journal, type JournalOptions } from "./journal.ts";

const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "journal-test-hmac-key-0123456789abcdef" };

function draft(i: number): ReceiptDraft {
  return {
    kind: "delivery",
    status: "pass",
    rationale: `batch ${i}`,
    inputs_digest: String(i).padStart(64, "0"),
    actor: "svc:test",
    run_key: "run",
    output_id: "out",
    detail: { i },
  };
}

/**
 * Runs `body` with a journal over a WAL in `dir` (drained head in `dir` too) and the Postgres in
 * context; `drain` copies the WAL to Postgres and keeps the drained head.
 */
function journalAt<A, E, R>(
  dir: string,
  body: (
    journal: Journal["Service"],
    drain: Effect.Effect<number, unknown, Postgres>,
  ) => Effect.Effect<A, E, R>,
  options: JournalOptions = {},
) {
  return Effect.scoped(Effect.gen(function* () {
    const signer = yield* signerFromEnv(HMAC_ENV);
    const headFile = join(dir, "drained_head.json");
    const services = yield* Layer.build(
      Journal.layer(signer, { drainedHeadFile: headFile, headReadTimeoutMs: 2000, ...options })
        .pipe(
          Layer.provideMerge(Receipts.layer(signer)),
          Layer.provideMerge(Wal.layer({ dir: join(dir, "wal") })),
        ),
    );
    const drain = Context.get(services, Wal).drainOnce(
      recordingDrainedHead(headFile, writeToPostgres),
    ).pipe(Effect.provideService(Receipts, Context.get(services, Receipts)));
    return yield* body(Context.get(services, Journal), drain);
  }));
}

/** The stored chain verifies end to end with the test key. */
const assertChainVerifies = Effect.gen(function* () {
  const signer = yield* signerFromEnv(HMAC_ENV);
  const verdict = yield* Effect.gen(function* () {
    return yield* (yield* Receipts).verify(yield* verifierFromEnv(HMAC_ENV));
  }).pipe(Effect.provide(Receipts.layer(signer)));
  assert.equal(verdict.ok, true, JSON.stringify(verdict));
});

const sealOne = (journal: Journal["Service"], i: number) =>
  journal.append([], [draft(i)]).pipe(Effect.map(([r]) => r));

pgTest(
  "with Postgres unreachable and the WAL drained, the chain goes on from the drained head without a fork",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const before = yield* journalAt(dir, (journal, drain) =>
        Effect.gen(function* () {
          yield* sealOne(journal, 1);
          const last = yield* sealOne(journal, 2);
          assert.equal(yield* drain, 2);
          return last;
        }));
      assert.deepEqual(yield* readDrainedHead(join(dir, "drained_head.json")), {
        seq: before.seq,
        hash: before.hash,
      });
      const offline = yield* journalAt(dir, (journal) => sealOne(journal, 3)).pipe(
        Effect.provide(unreachablePostgres()),
      );
      assert.equal(offline.seq, before.seq + 1);
      assert.equal(offline.prev_hash, before.hash);
      // Back online: the receipt sealed offline continues the stored chain.
      yield* journalAt(dir, (journal, drain) =>
        Effect.gen(function* () {
          assert.equal(yield* drain, 1);
          const next = yield* sealOne(journal, 4);
          assert.equal(next.seq, offline.seq + 1);
          assert.equal(yield* drain, 1);
        }));
      yield* assertChainVerifies;
    }),
  { only: "pglite", migrated: true },
);

pgTest(
  "with Postgres unreachable, the chain goes on from the WAL's undrained receipts",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const before = yield* journalAt(dir, (journal) => sealOne(journal, 1));
      const offline = yield* journalAt(dir, (journal) => sealOne(journal, 2)).pipe(
        Effect.provide(unreachablePostgres()),
      );
      assert.equal(offline.seq, before.seq + 1);
      assert.equal(offline.prev_hash, before.hash);
    }),
  { only: "pglite", migrated: true },
);

Deno.test("a fresh runs root with Postgres unreachable cannot know the chain head: backend mode gives up naming postgres", async () => {
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* tempDir;
      const error = yield* failure(journalAt(dir, () => Effect.void, { headWaitMs: 300 }));
      assert.equal(error.reason, "BOOTSTRAP_TIMEOUT");
      assert.match(error.message, /\bpostgres\b/);
    }).pipe(Effect.provide(unreachablePostgres())),
  ));
});

Deno.test("a fresh runs root with Postgres unreachable waits for the head in edge mode, and readiness says why", async () => {
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      const dir = yield* tempDir;
      const health = yield* Health.make;
      yield* health.markStarted;
      const waiting = yield* Effect.forkChild(
        journalAt(dir, () => Effect.void).pipe(Effect.provideService(Health, health)),
      );
      const deadline = Date.now() + 10_000;
      let readiness = yield* health.readiness;
      while (readiness.status !== "down" && Date.now() < deadline) {
        yield* Effect.sleep("10 millis");
        readiness = yield* health.readiness;
      }
      assert.equal(readiness.status, "down");
      assert.match(readiness.problems.join("\n"), /receipt chain head is unknown/);
      assert.equal(waiting.pollUnsafe(), undefined, "still waiting");
      yield* Fiber.interrupt(waiting);
    }).pipe(Effect.provide(unreachablePostgres())),
  ));
});

pgTest(
  "a drained-head file ahead of a reachable Postgres (a runs root moved to a new database) does not fork its chain",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      // What a runs root that last drained into some other database leaves behind.
      yield* writeDrainedHead(join(dir, "drained_head.json"), { seq: 367, hash: "f".repeat(64) });
      yield* journalAt(dir, (journal, drain) =>
        Effect.gen(function* () {
          const first = yield* sealOne(journal, 1);
          assert.equal(first.seq, 1, "the chain starts from this database's (empty) head");
          assert.equal(yield* drain, 1, "the drain is not stalled by a fork");
        }));
      yield* assertChainVerifies;
    }),
  { only: "pglite", migrated: true },
);

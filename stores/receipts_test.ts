import assert from "node:assert/strict";
import { Effect, Layer, Stream } from "effect";
import { sha256Hex } from "../core/hash.ts";
import { GENESIS, makeReceiptChain } from "../core/receipt_chain.ts";
import { RECEIPT_KEY_ENV, signerFromEnv, verifierFromEnv } from "../core/receipt_keys.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { Postgres } from "./postgres.ts";
import { migrate } from "./postgres_migrate.ts";
import { failure, pgTest, type PgTestContext } from "./postgres_testing.ts";
import { Receipts } from "./receipts.ts";

const ENV = { [RECEIPT_KEY_ENV.hmac]: "receipt-store-test-hmac-key-0123" };
const signer = await Effect.runPromise(signerFromEnv(ENV));
const verifier = await Effect.runPromise(verifierFromEnv(ENV));

function draft(n: number, extra: Partial<ReceiptDraft> = {}): ReceiptDraft {
  return {
    kind: "delivery",
    status: "pass",
    rationale: `Batch ${n} delivered`,
    inputs_digest: sha256Hex(`batch-${n}`),
    actor: "svc:world_stream_producer",
    run_key: "platform_20260102T101530Z",
    output_id: "s3_event_stream_with_fraud_6B",
    detail: { sequence_from: n * 10, sequence_to: n * 10 + 9, events: 10 },
    created_at_utc: "2026-01-02T10:15:30.123456Z",
    ...extra,
  };
}

type Service = Receipts["Service"];

function withReceipts<A, E>(
  body: (receipts: Service, ctx: PgTestContext) => Effect.Effect<A, E, Postgres>,
) {
  return (ctx: PgTestContext) =>
    Effect.gen(function* () {
      yield* migrate;
      return yield* body(yield* Receipts, ctx);
    }).pipe(Effect.provide(Receipts.layer(signer)));
}

const rows = (receipts: Service) => Stream.runCollect(receipts.all());

pgTest(
  "appended receipts form a chain that verifies, stored in order with their columns",
  withReceipts((receipts) =>
    Effect.gen(function* () {
      assert.deepEqual(yield* receipts.head, GENESIS);
      assert.deepEqual(yield* receipts.verify(verifier), { ok: true, count: 0, head: GENESIS });
      const appended = [];
      for (const n of [1, 2, 3]) appended.push(yield* receipts.append(draft(n)));
      assert.deepEqual(appended.map((r) => r.seq), [1, 2, 3]);
      assert.equal(appended[1].prev_hash, appended[0].hash);
      const head = { seq: 3, hash: appended[2].hash };
      assert.deepEqual(yield* receipts.head, head);
      assert.deepEqual(yield* receipts.verify(verifier), { ok: true, count: 3, head });

      const stored = yield* rows(receipts);
      assert.deepEqual(stored.map((row) => row.body), appended);
      assert.deepEqual(stored.map((row) => row.record_id), appended.map((r) => r.receipt_id));
      assert.equal(stored[0].kind, "delivery");
      assert.equal(stored[0].prev_hash, "0".repeat(64));
      assert.equal(stored[2].hash, appended[2].hash);
      const pg = yield* Postgres;
      const [at] = yield* pg.query<{ at: Date }>("select at from ws_receipts limit 1");
      assert.deepEqual(at.at, new Date("2026-01-02T10:15:30.123Z"));
    })
  ),
);

pgTest(
  "an append with a receipt id already stored returns the stored receipt",
  withReceipts((receipts) =>
    Effect.gen(function* () {
      const id = "c0ffee".padEnd(32, "0");
      const first = yield* receipts.append(draft(1, { receipt_id: id }));
      const again = yield* receipts.append(draft(1, { receipt_id: id }));
      assert.deepEqual(again, first);
      assert.equal((yield* rows(receipts)).length, 1);
    })
  ),
);

pgTest(
  "reading in small pages returns every receipt once, in chain order",
  withReceipts((receipts) =>
    Effect.gen(function* () {
      for (const n of [1, 2, 3, 4, 5]) yield* receipts.append(draft(n));
      const paged = yield* Stream.runCollect(receipts.all({ pageSize: 2 }));
      assert.deepEqual(paged.map((row) => (row.body as { seq: number }).seq), [1, 2, 3, 4, 5]);
    })
  ),
);

pgTest(
  "concurrent appends, also from a second connection pool, keep one unbroken chain",
  withReceipts((receipts, ctx) =>
    Effect.gen(function* () {
      const burst = (service: Service, from: number) =>
        Effect.forEach(
          Array.from({ length: 10 }, (_, i) => draft(from + i)),
          (d) => service.append(d),
          { concurrency: "unbounded" },
        );
      const second = ctx.connectAgain === undefined
        ? burst(receipts, 100)
        : Effect.flatMap(Receipts, (other) => burst(other, 100)).pipe(
          Effect.provide(Receipts.layer(signer).pipe(Layer.provide(ctx.connectAgain()))),
        );
      yield* Effect.all([burst(receipts, 0), second], { concurrency: "unbounded" });
      const verdict = yield* receipts.verify(verifier);
      assert.equal(verdict.ok, true, JSON.stringify(verdict));
      assert.equal(verdict.ok && verdict.count, 20);
    })
  ),
);

pgTest(
  "a single writer's chain drains idempotently and a fork is refused",
  withReceipts((receipts) =>
    Effect.gen(function* () {
      yield* receipts.append(draft(1));
      const chain = yield* receipts.openChain;
      const sealed = yield* chain.append([draft(2), draft(3), draft(4)]);
      assert.deepEqual(sealed.map((r) => r.seq), [2, 3, 4]);

      // A drain that stopped half way, then the whole batch replayed.
      assert.equal((yield* receipts.store(sealed.slice(0, 1))).inserted, 1);
      const replay = yield* receipts.store(sealed);
      assert.deepEqual(replay, { inserted: 2, head: { seq: 4, hash: sealed[2].hash } });
      assert.equal((yield* receipts.store([...sealed, ...sealed])).inserted, 0);
      const verdict = yield* receipts.verify(verifier);
      assert.equal(verdict.ok && verdict.count, 4);

      // A second in-memory chain opened on the old head forks; the store refuses it.
      const stale = yield* makeReceiptChain({ seq: 1, hash: sealed[0].prev_hash }, signer);
      const forked = yield* stale.append([draft(9)]);
      const fork = yield* failure(receipts.store(forked));
      assert.equal(fork.reason, "RECEIPT_CHAIN_FORK");

      const conflicting = { ...sealed[1], hash: "e".repeat(64) };
      assert.equal((yield* failure(receipts.store([conflicting]))).reason, "RECEIPT_CONFLICT");
      assert.equal((yield* rows(receipts)).length, 4);
    })
  ),
);

pgTest(
  "a column edited behind the body's back is reported as EDITED",
  withReceipts((receipts) =>
    Effect.gen(function* () {
      const appended = [];
      for (const n of [1, 2, 3]) appended.push(yield* receipts.append(draft(n)));
      const pg = yield* Postgres;
      yield* pg.exec("alter table ws_receipts disable trigger ws_receipts_append_only");
      yield* pg.query(
        "update ws_receipts set output_id = 'arrival_events_5B' where record_id = $1",
        [
          appended[1].receipt_id,
        ],
      );
      const verdict = yield* receipts.verify(verifier);
      assert.equal(verdict.ok, false);
      if (verdict.ok) return;
      assert.deepEqual([verdict.index, verdict.receipt_id, verdict.problem], [
        1,
        appended[1].receipt_id,
        "EDITED",
      ]);
      assert.match(verdict.detail, /output_id/);
    })
  ),
);

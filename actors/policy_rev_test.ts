/**
 * The profile's `policy.policy_rev` reaches every receipt: sealed through the durable path every
 * writer uses (`durableLayer`: WAL, Journal, drain to Postgres), read back from Postgres, and the
 * stored chain still verifies with the runs root's key.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Stream } from "effect";
import { verifierFromEnv } from "../core/receipt_keys.ts";
import { loadProfile } from "../core/profile.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { Receipts } from "../stores/receipts.ts";
import { WalDrain } from "./wal/drain.ts";
import { Journal } from "./journal.ts";
import { durableLayer, receiptKeyEnv } from "./runtime.ts";
import { runConfigOf } from "./run_config.ts";

function draft(kind: string, i: number): ReceiptDraft {
  return {
    kind,
    status: "pass",
    rationale: `${kind} ${i}`,
    inputs_digest: String(i).padStart(64, "0"),
    actor: "svc:world_stream_producer",
    run_key: "run",
  };
}

Deno.test("every receipt sealed under a profile carries its policy_rev and the chain verifies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "policy_rev_test_" });
  try {
    await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const profile = yield* loadProfile("local", {
        WORLDSTREAM_RUNS_ROOT: dir,
        WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
        CONTROL_BUS_ROOT: join(dir, "bus"),
      });
      const env = yield* receiptKeyEnv(profile, {});
      const stored = yield* Effect.gen(function* () {
        const journal = yield* Journal;
        yield* journal.append([], [draft("run_start", 1), draft("delivery", 2)]);
        yield* journal.append([], [draft("run_end", 3)]);
        yield* (yield* WalDrain).drainNow;
        const receipts = yield* Receipts;
        const rows = yield* Stream.runCollect(receipts.all());
        const verdict = yield* receipts.verify(yield* verifierFromEnv(env));
        return { bodies: rows.map((r) => r.body as Record<string, unknown>), verdict };
      }).pipe(Effect.provide(durableLayer(runConfigOf(profile), { env })));
      assert.equal(profile.policy.policy_rev, "local-v0");
      assert.deepEqual(stored.bodies.map((b) => b.kind), ["run_start", "delivery", "run_end"]);
      assert.deepEqual(stored.bodies.map((b) => b.policy_rev), [
        "local-v0",
        "local-v0",
        "local-v0",
      ]);
      assert.equal(stored.verdict.ok, true, JSON.stringify(stored.verdict));
    })));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

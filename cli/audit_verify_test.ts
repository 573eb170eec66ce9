import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer } from "effect";
import { postgresLayer } from "../actors/runtime.ts";
import { sha256Hex } from "../core/hash.ts";
import { loadProfile } from "../core/profile.ts";
import { sealReceipt } from "../core/receipt_chain.ts";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../core/receipt_keys.ts";
import type { Receipt, ReceiptDraft } from "../schemas/receipt.ts";
import { Postgres } from "../stores/postgres.ts";
import { Receipts } from "../stores/receipts.ts";
import { auditVerifyCommand } from "./audit_verify.ts";

const HMAC_KEY = "audit-verify-test-hmac-key-01234";

/** A local profile on its own PGlite folder, with a receipt key. */
async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "audit_verify_test_" });
  const env = {
    WORLDSTREAM_PGLITE_DIR: join(dir, "pglite"),
    WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
    [RECEIPT_KEY_ENV.hmac]: HMAC_KEY,
  };
  const profile = await Effect.runPromise(loadProfile("local", env));
  const db = postgresLayer(profile);
  return {
    env,
    /** Runs `effect` on the profile's database (opened and closed around it). */
    onDb: <A, E>(effect: Effect.Effect<A, E, Postgres | Receipts>) =>
      Effect.runPromise(
        effect.pipe(Effect.provide(Receipts.layerFromEnv(env).pipe(Layer.provideMerge(db)))),
      ),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

function draft(n: number): ReceiptDraft {
  return {
    kind: "delivery",
    status: "pass",
    rationale: `Batch ${n} delivered`,
    inputs_digest: sha256Hex(`batch-${n}`),
    actor: "svc:world_stream_producer",
    detail: { sequence_from: n * 10, sequence_to: n * 10 + 9, events: 10 },
  };
}

const appendThree = Effect.gen(function* () {
  const receipts = yield* Receipts;
  const out: Array<Receipt> = [];
  for (const n of [1, 2, 3]) out.push(yield* receipts.append(draft(n)));
  return out;
});

Deno.test("an untouched chain verifies OK and an edited row makes it BROKEN", async () => {
  const { env, onDb, cleanup } = await setup();
  try {
    const empty = await Effect.runPromise(auditVerifyCommand(["--profile", "local"], env));
    assert.deepEqual(empty, { line: { status: "OK", count: 0 }, ok: true });

    const appended = await onDb(appendThree);
    const ok = await Effect.runPromise(auditVerifyCommand(["--profile", "local"], env));
    assert.deepEqual(ok, { line: { status: "OK", count: 3 }, ok: true });

    // A tamperer with database access: the append-only trigger must be switched off first.
    await onDb(Effect.gen(function* () {
      const pg = yield* Postgres;
      yield* pg.exec("alter table ws_receipts disable trigger ws_receipts_append_only");
      yield* pg.query(
        `update ws_receipts set body = jsonb_set(body, '{rationale}', '"Nothing happened"')
         where record_id = $1`,
        [appended[1].receipt_id],
      );
    }));
    const broken = await Effect.runPromise(auditVerifyCommand(["--profile", "local"], env));
    assert.equal(broken.ok, false);
    assert.equal(broken.line.status, "BROKEN");
    assert.equal(broken.line.count, 1);
    const firstBreak = broken.line.first_break as Record<string, unknown>;
    assert.deepEqual(
      { index: firstBreak.index, receipt_id: firstBreak.receipt_id, problem: firstBreak.problem },
      { index: 1, receipt_id: appended[1].receipt_id, problem: "EDITED" },
    );
  } finally {
    await cleanup();
  }
});

Deno.test("a forged row signed with another key is BROKEN with BAD_SIGNATURE", async () => {
  const { env, onDb, cleanup } = await setup();
  try {
    const appended = await onDb(appendThree);
    const forger = await Effect.runPromise(
      signerFromEnv({ [RECEIPT_KEY_ENV.hmac]: "the-forgers-own-hmac-key-4567890" }),
    );
    // The forger links the row correctly and inserts it the way the store does.
    const forged = await Effect.runPromise(
      sealReceipt(draft(4), { seq: 3, hash: appended[2].hash }, forger),
    );
    await onDb(Receipts.use((receipts) => receipts.store([forged])));
    const result = await Effect.runPromise(auditVerifyCommand([], env));
    assert.equal(result.ok, false);
    assert.deepEqual(result.line.first_break, {
      index: 3,
      receipt_id: forged.receipt_id,
      problem: "BAD_SIGNATURE",
      detail: `Signed with HMAC-SHA256 key ${forger.kid}, which is not one of the verification ` +
        `keys (${(await Effect.runPromise(signerFromEnv(env))).kid})`,
    });
  } finally {
    await cleanup();
  }
});

Deno.test("without a verification key audit-verify fails with RECEIPT_KEY_MISSING", async () => {
  const runsRoot = await Deno.makeTempDir({ prefix: "ws-audit-nokey-" });
  const error = await Effect.runPromise(
    Effect.flip(auditVerifyCommand([], { WORLDSTREAM_RUNS_ROOT: runsRoot })),
  );
  await Deno.remove(runsRoot, { recursive: true });
  assert.equal(error.reason, "RECEIPT_KEY_MISSING");
  const badFlag = await Effect.runPromise(
    Effect.flip(auditVerifyCommand(["--profil", "local"], { [RECEIPT_KEY_ENV.hmac]: HMAC_KEY })),
  );
  assert.equal(badFlag.reason, "BAD_ARGS");
});

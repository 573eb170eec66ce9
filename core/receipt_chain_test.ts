import assert from "node:assert/strict";
import { Effect, Schema } from "effect";
import { TestClock } from "effect/testing";
import { fail } from "../schemas/errors.ts";
import { Receipt, type ReceiptDraft, ZERO_HASH } from "../schemas/receipt.ts";
import { canonicalJson, sha256Hex } from "./hash.ts";
import {
  type ChainVerdict,
  GENESIS,
  headOf,
  makeReceiptChain,
  receiptHash,
  sealReceipt,
  verifyChain,
} from "./receipt_chain.ts";
import {
  RECEIPT_KEY_ENV,
  type ReceiptSigner,
  type ReceiptVerifier,
  signerFromEnv,
  verifierFromEnv,
} from "./receipt_keys.ts";

const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "receipt-test-hmac-key-0123456789" };
const OTHER_HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "someone-elses-hmac-key-987654321" };

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect);

const hmacSigner = await run(signerFromEnv(HMAC_ENV));
const hmacVerifier = await run(verifierFromEnv(HMAC_ENV));

/** A fresh Ed25519 key pair as the environment would carry it. */
async function ed25519Env() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const b64 = async (format: "pkcs8" | "raw" | "spki", key: CryptoKey) =>
    btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.exportKey(format, key))));
  return {
    privatePkcs8: await b64("pkcs8", pair.privateKey),
    publicRaw: await b64("raw", pair.publicKey),
    publicSpki: await b64("spki", pair.publicKey),
  };
}

function draft(n: number, extra: Partial<ReceiptDraft> = {}): ReceiptDraft {
  return {
    kind: "delivery",
    status: "pass",
    rationale: `Batch ${n} delivered`,
    inputs_digest: sha256Hex(`batch-${n}`),
    actor: "svc:world_stream_producer",
    run_key: "platform_20260102T101530Z",
    output_id: "s3_event_stream_with_fraud_6B",
    detail: {
      sequence_from: n * 10,
      sequence_to: n * 10 + 9,
      events: 10,
      counts: { ADMIT: 9, DUPLICATE: 1, QUARANTINE: 0 },
    },
    created_at_utc: `2026-01-02T10:15:${String(30 + n).padStart(2, "0")}.000000Z`,
    ...extra,
  };
}

/** `n` receipts sealed one after another. */
async function chainOf(n: number, signer: ReceiptSigner = hmacSigner): Promise<Array<Receipt>> {
  const receipts: Array<Receipt> = [];
  let prev = GENESIS;
  for (let i = 1; i <= n; i++) {
    const receipt = await run(sealReceipt(draft(i), prev, signer));
    receipts.push(receipt);
    prev = { seq: receipt.seq, hash: receipt.hash };
  }
  return receipts;
}

function verify(
  receipts: ReadonlyArray<unknown>,
  verifier: ReceiptVerifier = hmacVerifier,
): Promise<ChainVerdict> {
  return run(verifyChain(receipts, verifier));
}

function assertBreak(
  verdict: ChainVerdict,
  expected: { index: number; receipt_id: string; problem: string },
) {
  assert.equal(verdict.ok, false, `expected a break, got ${JSON.stringify(verdict)}`);
  if (verdict.ok) return;
  assert.deepEqual(
    { index: verdict.index, receipt_id: verdict.receipt_id, problem: verdict.problem },
    expected,
  );
}

Deno.test("each receipt carries its position, its predecessor's hash and its own hash", async () => {
  const receipts = await chainOf(3);
  assert.deepEqual(receipts.map((r) => r.seq), [1, 2, 3]);
  assert.equal(receipts[0].prev_hash, ZERO_HASH);
  assert.equal(receipts[1].prev_hash, receipts[0].hash);
  assert.equal(receipts[2].prev_hash, receipts[1].hash);
  for (const r of receipts) {
    const { hash: _h, signature: _s, ...body } = r;
    assert.equal(r.hash, sha256Hex(canonicalJson(body)));
    assert.equal(r.signature.alg, "HMAC-SHA256");
    assert.equal(r.signature.kid, hmacSigner.kid);
    assert.equal(Schema.is(Receipt)(r), true);
  }
  assert.deepEqual(receipts[0].badges, []);
  assert.equal(receipts[0].degraded, false);
  assert.match(receipts[0].receipt_id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(receipts.map((r) => r.receipt_id)).size, 3);
});

Deno.test("an untouched chain verifies, also after a JSON round trip", async () => {
  const receipts = await chainOf(4);
  const verdict = await verify(JSON.parse(JSON.stringify(receipts)));
  assert.deepEqual(verdict, {
    ok: true,
    count: 4,
    head: { seq: 4, hash: receipts[3].hash },
  });
  assert.deepEqual(await verify([]), { ok: true, count: 0, head: GENESIS });
});

Deno.test("a writer's receipt id is kept and the time defaults to the Clock", async () => {
  const { created_at_utc: _, ...timeless } = draft(1, { receipt_id: "ab".repeat(16) });
  const receipt = await run(
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2026-03-04T05:06:07.089Z"));
      return yield* sealReceipt(timeless, GENESIS, hmacSigner);
    }).pipe(Effect.provide(TestClock.layer())),
  );
  assert.equal(receipt.receipt_id, "ab".repeat(16));
  assert.equal(receipt.created_at_utc, "2026-03-04T05:06:07.089000Z");
});

Deno.test("a draft with a bad field is refused with a message naming it", async () => {
  const error = await run(
    Effect.flip(sealReceipt(draft(1, { inputs_digest: "not-a-digest" }), GENESIS, hmacSigner)),
  );
  assert.equal(error.reason, "RECEIPT_INVALID");
  assert.match(error.message, /inputs_digest/);
});

Deno.test("an edited field is reported as EDITED at that receipt", async () => {
  const receipts = await chainOf(4);
  const edited = receipts.map((r) => ({ ...r }));
  edited[2] = { ...edited[2], detail: { ...edited[2].detail, events: 11 } };
  assertBreak(await verify(edited), {
    index: 2,
    receipt_id: receipts[2].receipt_id,
    problem: "EDITED",
  });
  // A field that no longer fits the format is an edit too.
  const malformed = [...receipts];
  malformed[1] = { ...malformed[1], status: "fine" } as unknown as Receipt;
  assertBreak(await verify(malformed), {
    index: 1,
    receipt_id: receipts[1].receipt_id,
    problem: "EDITED",
  });
});

Deno.test("a deleted receipt is reported as MISSING at its successor", async () => {
  const receipts = await chainOf(5);
  const gap = [receipts[0], receipts[1], receipts[3], receipts[4]];
  assertBreak(await verify(gap), {
    index: 2,
    receipt_id: receipts[3].receipt_id,
    problem: "MISSING",
  });
  // Deleting the first receipt is a gap too.
  assertBreak(await verify(receipts.slice(1)), {
    index: 0,
    receipt_id: receipts[1].receipt_id,
    problem: "MISSING",
  });
});

Deno.test("two swapped receipts are reported as REORDERED at the first of them", async () => {
  const receipts = await chainOf(5);
  const swapped = [receipts[0], receipts[2], receipts[1], receipts[3], receipts[4]];
  assertBreak(await verify(swapped), {
    index: 1,
    receipt_id: receipts[2].receipt_id,
    problem: "REORDERED",
  });
  // A receipt moved far ahead, and one repeated later.
  const moved = [receipts[0], receipts[1], receipts[3], receipts[4], receipts[2]];
  assertBreak(await verify(moved), {
    index: 2,
    receipt_id: receipts[3].receipt_id,
    problem: "REORDERED",
  });
  const repeated = [...receipts, receipts[1]];
  assertBreak(await verify(repeated), {
    index: 5,
    receipt_id: receipts[1].receipt_id,
    problem: "REORDERED",
  });
});

Deno.test("a wrong key is reported as BAD_SIGNATURE", async () => {
  const receipts = await chainOf(3);
  const otherVerifier = await run(verifierFromEnv(OTHER_HMAC_ENV));
  assertBreak(await verify(receipts, otherVerifier), {
    index: 0,
    receipt_id: receipts[0].receipt_id,
    problem: "BAD_SIGNATURE",
  });

  // A forger who edits a receipt, recomputes its hash and signs with their own key.
  const forger = await run(signerFromEnv(OTHER_HMAC_ENV));
  const forged = await run(
    sealReceipt(draft(2, { status: "hard_block", receipt_id: receipts[1].receipt_id }), {
      seq: 1,
      hash: receipts[0].hash,
    }, forger),
  );
  assertBreak(await verify([receipts[0], forged, receipts[2]]), {
    index: 1,
    receipt_id: receipts[1].receipt_id,
    problem: "BAD_SIGNATURE",
  });

  // Same key id, wrong bytes: the signature value itself was replaced.
  const replaced = { ...receipts[1], signature: { ...receipts[1].signature, value: "AAAA" } };
  assertBreak(await verify([receipts[0], replaced, receipts[2]]), {
    index: 1,
    receipt_id: receipts[1].receipt_id,
    problem: "BAD_SIGNATURE",
  });
});

Deno.test("a receipt signed by the right key but sealed onto another head is BAD_LINK", async () => {
  const receipts = await chainOf(3);
  const fork = await run(
    sealReceipt(draft(3, { rationale: "Forked" }), { seq: 2, hash: receipts[0].hash }, hmacSigner),
  );
  assertBreak(await verify([receipts[0], receipts[1], fork]), {
    index: 2,
    receipt_id: fork.receipt_id,
    problem: "BAD_LINK",
  });
  const wrongStart = await run(sealReceipt(draft(1), { seq: 0, hash: "f".repeat(64) }, hmacSigner));
  assertBreak(await verify([wrongStart]), {
    index: 0,
    receipt_id: wrongStart.receipt_id,
    problem: "BAD_LINK",
  });
});

Deno.test("an Ed25519 chain verifies with the raw or SPKI public key", async () => {
  const keys = await ed25519Env();
  const signer = await run(signerFromEnv({ [RECEIPT_KEY_ENV.ed25519Private]: keys.privatePkcs8 }));
  assert.equal(signer.alg, "Ed25519");
  const receipts = await chainOf(3, signer);
  assert.equal(receipts[0].signature.alg, "Ed25519");
  for (const publicKey of [keys.publicRaw, keys.publicSpki]) {
    const verifier = await run(verifierFromEnv({ [RECEIPT_KEY_ENV.ed25519Public]: publicKey }));
    assert.deepEqual(await verify(receipts, verifier), {
      ok: true,
      count: 3,
      head: { seq: 3, hash: receipts[2].hash },
    });
  }
  const edited = [...receipts];
  edited[1] = { ...edited[1], actor: "operator:mallory" };
  const verifier = await run(verifierFromEnv({ [RECEIPT_KEY_ENV.ed25519Public]: keys.publicRaw }));
  assertBreak(await verify(edited, verifier), {
    index: 1,
    receipt_id: receipts[1].receipt_id,
    problem: "EDITED",
  });
});

Deno.test("an Ed25519 chain does not verify with another Ed25519 key or an HMAC key", async () => {
  const keys = await ed25519Env();
  const other = await ed25519Env();
  const signer = await run(signerFromEnv({ [RECEIPT_KEY_ENV.ed25519Private]: keys.privatePkcs8 }));
  const receipts = await chainOf(2, signer);
  const otherVerifier = await run(
    verifierFromEnv({ [RECEIPT_KEY_ENV.ed25519Public]: other.publicRaw }),
  );
  assertBreak(await verify(receipts, otherVerifier), {
    index: 0,
    receipt_id: receipts[0].receipt_id,
    problem: "BAD_SIGNATURE",
  });
  assertBreak(await verify(receipts, hmacVerifier), {
    index: 0,
    receipt_id: receipts[0].receipt_id,
    problem: "BAD_SIGNATURE",
  });
  // A verifier holding both keys verifies chains signed by either.
  const both = await run(
    verifierFromEnv({ ...HMAC_ENV, [RECEIPT_KEY_ENV.ed25519Public]: keys.publicRaw }),
  );
  assert.equal((await verify(receipts, both)).ok, true);
  assert.equal((await verify(await chainOf(2), both)).ok, true);
});

Deno.test("an in-memory chain moves its head only when the receipts were persisted", async () => {
  const result = await run(Effect.gen(function* () {
    const chain = yield* makeReceiptChain(GENESIS, hmacSigner);
    const stored: Array<Receipt> = [];
    const persist = (receipts: ReadonlyArray<Receipt>) =>
      Effect.sync(() => void stored.push(...receipts));
    yield* chain.append([draft(1), draft(2)], persist);
    const refused = yield* Effect.flip(
      chain.append([draft(3)], () => Effect.fail(fail("WAL_QUOTA_EXCEEDED", "The WAL is full"))),
    );
    // Concurrent appenders still make one chain.
    yield* Effect.forEach(
      [3, 4, 5, 6],
      (n) => chain.append([draft(n)], persist),
      { concurrency: "unbounded" },
    );
    return { stored, refused, head: yield* chain.head };
  }));
  assert.equal(result.refused.reason, "WAL_QUOTA_EXCEEDED");
  assert.deepEqual(result.stored.map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(result.head, { seq: 6, hash: result.stored[5].hash });
  assert.equal((await verify(result.stored)).ok, true);
  assert.equal(receiptHash(result.stored[5]), result.stored[5].hash);
});

Deno.test("a chain stamps its policy revision into every receipt, inside the signed hash", async () => {
  // Two receipts sealed before policy_rev existed, then the chain goes on under a policy.
  const old = await chainOf(2);
  const stamped = await run(Effect.gen(function* () {
    const chain = yield* makeReceiptChain(headOf(old[1]), hmacSigner, { policyRev: "local-v7" });
    return yield* chain.append([draft(3), draft(4, { policy_rev: "operator-override-v1" })]);
  }));
  assert.equal("policy_rev" in old[0], false);
  assert.equal(stamped[0].policy_rev, "local-v7");
  // A draft that names its own revision keeps it.
  assert.equal(stamped[1].policy_rev, "operator-override-v1");
  const { hash: _h, signature: _s, ...body } = stamped[0];
  assert.equal(stamped[0].hash, sha256Hex(canonicalJson(body)));

  // Old and new receipts verify as one chain.
  const chain = [...old, ...stamped];
  assert.deepEqual(await verify(JSON.parse(JSON.stringify(chain))), {
    ok: true,
    count: 4,
    head: headOf(stamped[1]),
  });
  // The revision is covered by the hash: changing or removing it is an edit.
  assertBreak(await verify([...old, { ...stamped[0], policy_rev: "local-v8" }, stamped[1]]), {
    index: 2,
    receipt_id: stamped[0].receipt_id,
    problem: "EDITED",
  });
  const { policy_rev: _p, ...stripped } = stamped[0];
  assertBreak(await verify([...old, stripped, stamped[1]]), {
    index: 2,
    receipt_id: stamped[0].receipt_id,
    problem: "EDITED",
  });
});

import assert from "node:assert/strict";
import { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { sha256Hex } from "./hash.ts";
import type { Env } from "./profile_interpolate.ts";
import { RECEIPT_KEY_ENV, signerFromEnv, verifierFromEnv } from "./receipt_keys.ts";

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect);
const HASH = sha256Hex("a receipt");

async function ed25519Keys() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const b64 = async (format: "pkcs8" | "raw", key: CryptoKey) =>
    btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.exportKey(format, key))));
  return {
    privatePkcs8: await b64("pkcs8", pair.privateKey),
    publicRaw: await b64("raw", pair.publicKey),
  };
}

Deno.test("without a key there is no signer and no verifier, and the error says what to set", async () => {
  const makers: Array<(env: Env) => Effect.Effect<unknown, WorldstreamError>> = [
    signerFromEnv,
    verifierFromEnv,
  ];
  for (const make of makers) {
    const error = await run(Effect.flip(make({ [RECEIPT_KEY_ENV.hmac]: "  " })));
    assert.equal(error.reason, "RECEIPT_KEY_MISSING");
    assert.match(error.message, /WORLDSTREAM_RECEIPT_HMAC_KEY/);
    assert.match(error.message, /WORLDSTREAM_RECEIPT_ED25519_/);
  }
});

Deno.test("an HMAC key given raw or as base64 of the same bytes signs the same way", async () => {
  const raw = "receipt-test-hmac-key-0123456789";
  const signer = await run(signerFromEnv({ [RECEIPT_KEY_ENV.hmac]: raw }));
  const viaBase64 = await run(signerFromEnv({ [RECEIPT_KEY_ENV.hmac]: btoa(raw) }));
  assert.equal(signer.alg, "HMAC-SHA256");
  assert.match(signer.kid, /^hmac:[0-9a-f]{16}$/);
  assert.equal(viaBase64.kid, signer.kid);
  const signature = await run(signer.sign(HASH));
  assert.deepEqual(await run(viaBase64.sign(HASH)), signature);
  const verifier = await run(verifierFromEnv({ [RECEIPT_KEY_ENV.hmac]: raw }));
  assert.equal(await run(verifier.check(HASH, signature)), undefined);
  assert.match(
    (await run(verifier.check(sha256Hex("another receipt"), signature))) ?? "",
    /does not verify/,
  );
});

Deno.test("a bad key is refused without echoing it", async () => {
  const secret = "short-secret";
  const short = await run(Effect.flip(signerFromEnv({ [RECEIPT_KEY_ENV.hmac]: secret })));
  assert.equal(short.reason, "RECEIPT_KEY_INVALID");
  assert.match(short.message, /too short/);
  assert.equal(short.message.includes(secret), false);

  const notPkcs8 = btoa("this is not a pkcs8 ed25519 private key at all");
  const bad = await run(
    Effect.flip(signerFromEnv({ [RECEIPT_KEY_ENV.ed25519Private]: notPkcs8 })),
  );
  assert.equal(bad.reason, "RECEIPT_KEY_INVALID");
  assert.match(bad.message, /WORLDSTREAM_RECEIPT_ED25519_PRIVATE_KEY/);
  assert.equal(bad.message.includes(notPkcs8), false);

  const badPublic = await run(
    Effect.flip(verifierFromEnv({ [RECEIPT_KEY_ENV.ed25519Public]: "not base64!" })),
  );
  assert.equal(badPublic.reason, "RECEIPT_KEY_INVALID");
});

Deno.test("Ed25519 is preferred for signing and a mismatched public key is refused", async () => {
  const keys = await ed25519Keys();
  const other = await ed25519Keys();
  const signer = await run(signerFromEnv({
    [RECEIPT_KEY_ENV.hmac]: "receipt-test-hmac-key-0123456789",
    [RECEIPT_KEY_ENV.ed25519Private]: keys.privatePkcs8,
    [RECEIPT_KEY_ENV.ed25519Public]: keys.publicRaw,
  }));
  assert.equal(signer.alg, "Ed25519");
  assert.match(signer.kid, /^ed25519:[0-9a-f]{16}$/);
  // The private key alone also verifies: its public half is derived from it.
  const fromPrivate = await run(
    verifierFromEnv({ [RECEIPT_KEY_ENV.ed25519Private]: keys.privatePkcs8 }),
  );
  assert.deepEqual(fromPrivate.kids, [signer.kid]);
  assert.equal(await run(fromPrivate.check(HASH, await run(signer.sign(HASH)))), undefined);

  const mismatch = await run(Effect.flip(signerFromEnv({
    [RECEIPT_KEY_ENV.ed25519Private]: keys.privatePkcs8,
    [RECEIPT_KEY_ENV.ed25519Public]: other.publicRaw,
  })));
  assert.equal(mismatch.reason, "RECEIPT_KEY_INVALID");
  assert.match(mismatch.message, /not the public half/);
});

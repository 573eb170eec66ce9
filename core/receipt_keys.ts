/**
 * The keys that sign and verify receipts, read from the environment and used through WebCrypto.
 *
 *   WORLDSTREAM_RECEIPT_ED25519_PRIVATE_KEY  PKCS8, base64: signs with Ed25519 (preferred).
 *   WORLDSTREAM_RECEIPT_ED25519_PUBLIC_KEY   raw (32 bytes) or SPKI, base64: verifies Ed25519.
 *   WORLDSTREAM_RECEIPT_HMAC_KEY             base64 or raw text, 16+ bytes: HMAC-SHA256 both ways.
 *
 * What is signed is the receipt's `hash`, its 64 hex characters as ASCII; the hash covers the
 * canonical JSON of the rest of the receipt, so this signs the receipt. A key id (`kid`) names
 * the key without revealing it: `ed25519:` + 16 hex of sha256(raw public key), `hmac:` + 16 hex
 * of HMAC(key, "worldstream receipt kid"). No key → RECEIPT_KEY_MISSING, never an unsigned
 * receipt. Key text never appears in an error, a log or a result.
 */
import { Effect } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { ReceiptSignature, SignatureAlg } from "../schemas/receipt.ts";
import { sha256Hex } from "./hash.ts";
import type { Env } from "./profile_interpolate.ts";

/** The environment variables that hold receipt keys. */
export const RECEIPT_KEY_ENV = {
  hmac: "WORLDSTREAM_RECEIPT_HMAC_KEY",
  ed25519Private: "WORLDSTREAM_RECEIPT_ED25519_PRIVATE_KEY",
  ed25519Public: "WORLDSTREAM_RECEIPT_ED25519_PUBLIC_KEY",
} as const;

/** Signs receipt hashes with one key. */
export interface ReceiptSigner {
  readonly alg: SignatureAlg;
  readonly kid: string;
  /** The signature over `hash` (64 lowercase hex). */
  readonly sign: (hash: string) => Effect.Effect<ReceiptSignature, WorldstreamError>;
}

/** Checks receipt signatures against the keys it holds. */
export interface ReceiptVerifier {
  /** The key ids it holds (for messages). */
  readonly kids: ReadonlyArray<string>;
  /** Why `signature` does not sign `hash`, or undefined when it does. */
  readonly check: (
    hash: string,
    signature: ReceiptSignature,
  ) => Effect.Effect<string | undefined>;
}

/** The signer the environment configures: Ed25519 when its private key is set, else HMAC. */
export const signerFromEnv = Effect.fn("signerFromEnv")(function* (
  env?: Env,
): Effect.fn.Return<ReceiptSigner, WorldstreamError> {
  const vars = env ?? Deno.env.toObject();
  const ed25519 = yield* ed25519FromEnv(vars);
  if (ed25519?.privateKey !== undefined) {
    const privateKey = ed25519.privateKey;
    return {
      alg: "Ed25519",
      kid: ed25519.kid,
      sign: (hash) =>
        signWith({ name: "Ed25519" }, privateKey, hash).pipe(
          Effect.map((value) => ({ alg: "Ed25519", kid: ed25519.kid, value })),
        ),
    } satisfies ReceiptSigner;
  }
  const hmac = yield* hmacFromEnv(vars);
  if (hmac !== undefined) {
    return {
      alg: "HMAC-SHA256",
      kid: hmac.kid,
      sign: (hash) =>
        signWith({ name: "HMAC" }, hmac.key, hash).pipe(
          Effect.map((value) => ({ alg: "HMAC-SHA256", kid: hmac.kid, value })),
        ),
    } satisfies ReceiptSigner;
  }
  return yield* fail(
    "RECEIPT_KEY_MISSING",
    `No receipt signing key: set ${RECEIPT_KEY_ENV.ed25519Private} (PKCS8, base64) or ` +
      `${RECEIPT_KEY_ENV.hmac} (base64 or raw, 16 bytes or more)`,
  );
});

/** A verifier for every key the environment configures (an Ed25519 public key, an HMAC key). */
export const verifierFromEnv = Effect.fn("verifierFromEnv")(function* (
  env?: Env,
): Effect.fn.Return<ReceiptVerifier, WorldstreamError> {
  const vars = env ?? Deno.env.toObject();
  const keys: Array<VerifyKey> = [];
  const ed25519 = yield* ed25519FromEnv(vars);
  if (ed25519 !== undefined) {
    keys.push({ alg: "Ed25519", kid: ed25519.kid, key: ed25519.publicKey, params: ED25519 });
  }
  const hmac = yield* hmacFromEnv(vars);
  if (hmac !== undefined) {
    keys.push({ alg: "HMAC-SHA256", kid: hmac.kid, key: hmac.key, params: { name: "HMAC" } });
  }
  if (keys.length === 0) {
    return yield* fail(
      "RECEIPT_KEY_MISSING",
      `No receipt verification key: set ${RECEIPT_KEY_ENV.ed25519Public} (raw or SPKI, base64), ` +
        `${RECEIPT_KEY_ENV.ed25519Private} or ${RECEIPT_KEY_ENV.hmac}`,
    );
  }
  return verifierOf(keys);
});

// ---------------------------------------------------------------------------------------------

interface VerifyKey {
  readonly alg: SignatureAlg;
  readonly kid: string;
  readonly key: CryptoKey;
  readonly params: AlgorithmIdentifier;
}

const ED25519 = { name: "Ed25519" } as const;
const HMAC_KID_LABEL = new TextEncoder().encode("worldstream receipt kid");
const MIN_HMAC_KEY_BYTES = 16;

function verifierOf(keys: ReadonlyArray<VerifyKey>): ReceiptVerifier {
  const kids = keys.map((k) => k.kid);
  return {
    kids,
    check: (hash, signature) =>
      Effect.gen(function* () {
        const key = keys.find((k) => k.alg === signature.alg && k.kid === signature.kid);
        if (key === undefined) {
          return `Signed with ${signature.alg} key ${signature.kid}, which is not one of the ` +
            `verification keys (${kids.join(", ")})`;
        }
        const bytes = fromBase64(signature.value);
        if (bytes === undefined) return "The signature value is not base64";
        const ok = yield* Effect.promise(() =>
          crypto.subtle.verify(key.params, key.key, bytes, ascii(hash)).catch(() => false)
        );
        return ok ? undefined : `The signature does not verify with key ${key.kid}`;
      }),
  };
}

function signWith(
  params: { readonly name: string },
  key: CryptoKey,
  hash: string,
): Effect.Effect<string, WorldstreamError> {
  // The key was checked when it was imported: signing with it cannot fail but by a defect.
  return Effect.promise(() => crypto.subtle.sign(params, key, ascii(hash))).pipe(
    Effect.map((signature) => toBase64(new Uint8Array(signature))),
  );
}

interface Ed25519Keys {
  readonly kid: string;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey | undefined;
}

// The private key alone is enough: its JWK form carries the public key (`x`).
function ed25519FromEnv(env: Env): Effect.Effect<Ed25519Keys | undefined, WorldstreamError> {
  return Effect.gen(function* () {
    const privateText = setting(env, RECEIPT_KEY_ENV.ed25519Private);
    const publicText = setting(env, RECEIPT_KEY_ENV.ed25519Public);
    const fromPrivate = privateText === undefined ? undefined : yield* importPrivate(privateText);
    const fromPublic = publicText === undefined ? undefined : yield* importPublic(publicText);
    if (fromPrivate !== undefined && fromPublic !== undefined) {
      if (!sameBytes(fromPrivate.raw, fromPublic)) {
        return yield* fail(
          "RECEIPT_KEY_INVALID",
          `${RECEIPT_KEY_ENV.ed25519Public} is not the public half of ` +
            RECEIPT_KEY_ENV.ed25519Private,
        );
      }
    }
    const raw = fromPrivate?.raw ?? fromPublic;
    if (raw === undefined) return undefined;
    const publicKey = yield* cryptoStep(
      () => crypto.subtle.importKey("raw", raw, ED25519, false, ["verify"]),
      `${RECEIPT_KEY_ENV.ed25519Public} is not an Ed25519 public key`,
    );
    return {
      kid: `ed25519:${sha256Hex(raw).slice(0, 16)}`,
      publicKey,
      privateKey: fromPrivate?.key,
    };
  });
}

function importPrivate(text: string) {
  const name = RECEIPT_KEY_ENV.ed25519Private;
  const problem = `${name} is not a PKCS8 Ed25519 private key in base64`;
  return Effect.gen(function* () {
    const der = fromBase64(text);
    if (der === undefined) return yield* fail("RECEIPT_KEY_INVALID", problem);
    const extractable = yield* cryptoStep(
      () => crypto.subtle.importKey("pkcs8", der, ED25519, true, ["sign"]),
      problem,
    );
    const jwk = yield* cryptoStep(() => crypto.subtle.exportKey("jwk", extractable), problem);
    const raw = jwk.x === undefined ? undefined : fromBase64(jwk.x, true);
    if (raw === undefined) return yield* fail("RECEIPT_KEY_INVALID", problem);
    const key = yield* cryptoStep(
      () => crypto.subtle.importKey("pkcs8", der, ED25519, false, ["sign"]),
      problem,
    );
    return { key, raw };
  });
}

function importPublic(text: string) {
  const problem =
    `${RECEIPT_KEY_ENV.ed25519Public} is not an Ed25519 public key (raw or SPKI, base64)`;
  return Effect.gen(function* () {
    const bytes = fromBase64(text);
    if (bytes === undefined) return yield* fail("RECEIPT_KEY_INVALID", problem);
    if (bytes.length === 32) return bytes;
    const key = yield* cryptoStep(
      () => crypto.subtle.importKey("spki", bytes, ED25519, true, ["verify"]),
      problem,
    );
    const raw = yield* cryptoStep(() => crypto.subtle.exportKey("raw", key), problem);
    return new Uint8Array(raw);
  });
}

function hmacFromEnv(env: Env) {
  return Effect.gen(function* () {
    const text = setting(env, RECEIPT_KEY_ENV.hmac);
    if (text === undefined) return undefined;
    const decoded = fromBase64(text);
    // Text that reads as base64 of a long enough key is that key; anything else is the key as is.
    const bytes = decoded !== undefined && decoded.length >= MIN_HMAC_KEY_BYTES
      ? decoded
      : new TextEncoder().encode(text);
    if (bytes.length < MIN_HMAC_KEY_BYTES) {
      return yield* fail(
        "RECEIPT_KEY_INVALID",
        `${RECEIPT_KEY_ENV.hmac} is too short: use ${MIN_HMAC_KEY_BYTES} bytes or more`,
      );
    }
    const problem = `${RECEIPT_KEY_ENV.hmac} is not usable as an HMAC-SHA256 key`;
    const key = yield* cryptoStep(
      () =>
        crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, [
          "sign",
          "verify",
        ]),
      problem,
    );
    const tag = yield* cryptoStep(() => crypto.subtle.sign("HMAC", key, HMAC_KID_LABEL), problem);
    return { key, kid: `hmac:${hex(new Uint8Array(tag)).slice(0, 16)}` };
  });
}

// WebCrypto's own messages are dropped: the problem names the variable, never its value.
function cryptoStep<A>(f: () => Promise<A>, problem: string): Effect.Effect<A, WorldstreamError> {
  return Effect.tryPromise({ try: f, catch: () => fail("RECEIPT_KEY_INVALID", problem) });
}

function setting(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

function fromBase64(text: string, url = false): Uint8Array<ArrayBuffer> | undefined {
  if (!(url ? BASE64URL : BASE64).test(text)) return undefined;
  const standard = url ? text.replaceAll("-", "+").replaceAll("_", "/") : text;
  try {
    return Uint8Array.from(atob(standard), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function ascii(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * License packs signed here with freshly generated Ed25519 keys verify; each tampering fails
 * with its own code, through the same function the runtime calls.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Exit } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { canonicalJson } from "./hash.ts";
import { checkLicense, LICENSE_ENV, licenseVerdict, verifyLicensePack } from "./license.ts";

const NOW = 1_900_000_000;

function b64(bytes: ArrayBuffer | Uint8Array): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** A key pair, its key set (PUBKEYS.json format) under `id`, and a signer of license objects. */
async function keySet(id: string) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  const keys = JSON.stringify({
    version: "2025-10-24",
    keys: [{ id, type: "ed25519", base64: b64(raw) }],
  });
  const sign = async (license: Record<string, unknown>) =>
    b64(
      await crypto.subtle.sign(
        { name: "Ed25519" },
        pair.privateKey,
        new TextEncoder().encode(canonicalJson(license)),
      ),
    );
  return { keys, sign };
}

const LICENSE = {
  schema: "ccp.license.v1",
  kid: "k1",
  plan: "trial",
  features: ["telemetry_minimized", "telemetry_full"],
  exp: NOW + 3600,
};

async function verify(packText: string, keys: string, feature?: string) {
  const exit = await Effect.runPromiseExit(
    verifyLicensePack(packText, keys, { nowSeconds: NOW, ...(feature ? { feature } : {}) }),
  );
  if (Exit.isSuccess(exit)) return { ok: true as const, license: exit.value };
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
  return { ok: false as const, reason: error.reason, message: error.message };
}

const set = await keySet("k1");
const signed = async (license: Record<string, unknown>) =>
  JSON.stringify({ license, signature: await set.sign(license) });

Deno.test("a pack signed with a key of the set verifies, for each feature it grants", async () => {
  const pack = await signed(LICENSE);
  for (const feature of [undefined, "telemetry_minimized", "telemetry_full"]) {
    const result = await verify(pack, set.keys, feature);
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.license, LICENSE);
  }
  // Key order in the file does not matter: the signature covers the canonical JSON.
  const reordered = `{"signature":"${await set.sign(LICENSE)}","license":{"exp":${LICENSE.exp},` +
    `"features":["telemetry_minimized","telemetry_full"],"plan":"trial","kid":"k1",` +
    `"schema":"ccp.license.v1"}}`;
  assert.ok((await verify(reordered, set.keys)).ok);
});

Deno.test("each tampering of a pack fails with its own reason code", async () => {
  const good = JSON.parse(await signed(LICENSE));
  const other = await keySet("k1");
  const cases: Array<readonly [string, string, string, string | undefined]> = [
    [
      "payload edited (plan upgraded)",
      JSON.stringify({ ...good, license: { ...LICENSE, plan: "enterprise" } }),
      "LICENSE_SIGNATURE_INVALID",
      undefined,
    ],
    [
      "signature of another key",
      JSON.stringify({ ...good, signature: await other.sign(LICENSE) }),
      "LICENSE_SIGNATURE_INVALID",
      undefined,
    ],
    [
      "signature bytes flipped",
      JSON.stringify({
        ...good,
        signature: b64(
          Uint8Array.from(
            atob(good.signature),
            (c, i) => i === 0 ? c.charCodeAt(0) ^ 1 : c.charCodeAt(0),
          ),
        ),
      }),
      "LICENSE_SIGNATURE_INVALID",
      undefined,
    ],
    [
      "signature not base64",
      JSON.stringify({ ...good, signature: "valid-sig" }),
      "LICENSE_INVALID",
      undefined,
    ],
    ["not JSON", "{license: nope", "LICENSE_INVALID", undefined],
    [
      "license missing a field",
      JSON.stringify({ ...good, license: { ...LICENSE, kid: undefined } }),
      "LICENSE_INVALID",
      undefined,
    ],
    [
      "wrong schema",
      await signed({ ...LICENSE, schema: "ccp.license.v2" }),
      "LICENSE_INVALID",
      undefined,
    ],
    ["unknown kid", await signed({ ...LICENSE, kid: "k2" }), "LICENSE_UNKNOWN_KID", undefined],
    ["expired", await signed({ ...LICENSE, exp: NOW - 1 }), "LICENSE_EXPIRED", undefined],
    [
      "wrong feature",
      await signed({ ...LICENSE, features: ["telemetry_minimized"] }),
      "LICENSE_ENTITLEMENT_MISSING",
      "telemetry_full",
    ],
  ];
  for (const [what, pack, reason, feature] of cases) {
    const result = await verify(pack, set.keys, feature);
    assert.equal(result.ok, false, what);
    if (!result.ok) {
      assert.equal(result.reason, reason, `${what}: ${result.message}`);
      assert.doesNotMatch(result.message, /\n/);
    }
  }
});

Deno.test("a malformed key set fails LICENSE_PUBKEYS_INVALID", async () => {
  const pack = await signed(LICENSE);
  for (
    const keys of [
      "[]",
      "{nope",
      JSON.stringify({ keys: [{ id: "k1", type: "ed25519", base64: "AAAA" }] }),
    ]
  ) {
    const result = await verify(pack, keys);
    assert.equal(result.ok ? "VALID" : result.reason, "LICENSE_PUBKEYS_INVALID", keys);
  }
});

Deno.test("the pack and key set come from the environment; unset or absent files are named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "license_test_" });
  try {
    const packPath = join(dir, "pack.json");
    const keysPath = join(dir, "keys.json");
    await Deno.writeTextFile(packPath, await signed({ ...LICENSE, exp: 32503680000 }));
    await Deno.writeTextFile(keysPath, set.keys);
    const reasonOf = async (env: Record<string, string>) => {
      const exit = await Effect.runPromiseExit(checkLicense("telemetry_full", env));
      return Exit.isSuccess(exit)
        ? "VALID"
        : (exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError).reason;
    };
    const both = { [LICENSE_ENV.pack]: packPath, [LICENSE_ENV.pubkeys]: keysPath };
    assert.equal(await reasonOf(both), "VALID");
    assert.equal(await reasonOf({ [LICENSE_ENV.pubkeys]: keysPath }), "LICENSE_MISSING");
    assert.equal(
      await reasonOf({ ...both, [LICENSE_ENV.pack]: join(dir, "none.json") }),
      "LICENSE_MISSING",
    );
    assert.equal(await reasonOf({ [LICENSE_ENV.pack]: packPath }), "LICENSE_PUBKEYS_MISSING");

    // Expired against the real clock.
    await Deno.writeTextFile(packPath, await signed({ ...LICENSE, exp: 1_000_000_000 }));
    const verdict = await Effect.runPromise(licenseVerdict("telemetry_full", both));
    assert.equal(verdict.status, "INVALID");
    assert.equal(verdict.reason, "LICENSE_EXPIRED");
    assert.equal(verdict.kid, "k1");
    assert.equal(verdict.exp, 1_000_000_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * License packs: what lets a privacy tier above `local` run. A pack is `{license, signature}`;
 * the signature is Ed25519 (base64) over the canonical JSON of `license` (keys sorted, `,` and
 * `:` separators, UTF-8), checked with WebCrypto against the key set whose `id` is the license's
 * `kid`. A pack is valid when it verifies, is unexpired (`exp`, epoch seconds) and has the
 * tier's feature (`telemetry_minimized` / `telemetry_full`).
 *
 * Every profile takes the pack's path from WORLDSTREAM_LICENSE_PACK and the key set's from
 * WORLDSTREAM_LICENSE_PUBKEYS, so changing the tier needs no other edit. Checks run in this
 * order, each with its code: LICENSE_MISSING, LICENSE_PUBKEYS_MISSING, LICENSE_INVALID
 * (malformed), LICENSE_PUBKEYS_INVALID, LICENSE_UNKNOWN_KID, LICENSE_SIGNATURE_INVALID,
 * LICENSE_EXPIRED, LICENSE_ENTITLEMENT_MISSING.
 */
import { Clock, Effect } from "effect";
import { decodeJsonText } from "../schemas/decode.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { type License, LicensePack, LicensePublicKeys } from "../schemas/license.ts";
import type { PrivacyTier } from "../schemas/profile.ts";
import { canonicalJson } from "./hash.ts";
import type { Env } from "./profile_interpolate.ts";

/** The environment variables that name the license pack and the public key set. */
export const LICENSE_ENV = {
  pack: "WORLDSTREAM_LICENSE_PACK",
  pubkeys: "WORLDSTREAM_LICENSE_PUBKEYS",
} as const;

/** The feature a license must grant for each tier that needs one. */
export const TIER_FEATURE: Readonly<Record<Exclude<PrivacyTier, "local">, string>> = {
  minimized: "telemetry_minimized",
  full: "telemetry_full",
};

/** Whether a tier needs a license pack. */
export function tierNeedsLicense(tier: PrivacyTier): tier is Exclude<PrivacyTier, "local"> {
  return tier !== "local";
}

/** What a check learned of a pack, valid or not (the fields are null until the pack parsed). */
export interface LicenseVerdict {
  readonly status: "VALID" | "INVALID";
  readonly reason: WorldstreamError["reason"] | null;
  readonly message: string;
  readonly kid: string | null;
  readonly plan: string | null;
  readonly features: ReadonlyArray<string> | null;
  readonly exp: number | null;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (standard alphabet, padded) to bytes, or undefined when malformed. */
function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!BASE64.test(text)) return undefined;
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

const decodePack = decodeJsonText(LicensePack, "LICENSE_INVALID", "License pack");
const decodeKeys = decodeJsonText(LicensePublicKeys, "LICENSE_PUBKEYS_INVALID", "License keys");

/**
 * Verifies a pack's text against a key set's text at `nowSeconds`, and, when `feature` is given,
 * that the license grants it. Succeeds with the license; fails with the first check's code.
 */
export function verifyLicensePack(
  packText: string,
  keysText: string,
  options: { readonly nowSeconds: number; readonly feature?: string },
): Effect.Effect<License, WorldstreamError> {
  return Effect.gen(function* () {
    const pack = yield* decodePack(packText);
    const signature = fromBase64(pack.signature);
    if (signature === undefined) {
      return yield* fail("LICENSE_INVALID", "License pack: signature: Not padded standard base64");
    }
    const keys = yield* decodeKeys(keysText);
    const { license } = pack;
    const entry = keys.keys.find((k) => k.id === license.kid);
    if (entry === undefined) {
      return yield* fail(
        "LICENSE_UNKNOWN_KID",
        `License pack: kid ${license.kid} is not in the key set (ids: ${
          keys.keys.map((k) => k.id).join(", ") || "none"
        })`,
      );
    }
    const raw = fromBase64(entry.base64);
    if (raw === undefined || raw.length !== 32) {
      return yield* fail(
        "LICENSE_PUBKEYS_INVALID",
        `License keys: key ${entry.id} is not 32 bytes of padded standard base64`,
      );
    }
    const verified = yield* Effect.tryPromise({
      try: async () => {
        const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, [
          "verify",
        ]);
        const payload = new TextEncoder().encode(canonicalJson(license));
        return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, payload);
      },
      catch: () => fail("LICENSE_PUBKEYS_INVALID", `License keys: key ${entry.id} is not usable`),
    });
    if (!verified) {
      return yield* fail(
        "LICENSE_SIGNATURE_INVALID",
        `License pack: the signature does not verify with key ${entry.id}`,
      );
    }
    if (license.exp <= options.nowSeconds) {
      return yield* fail(
        "LICENSE_EXPIRED",
        `License pack: expired at ${new Date(license.exp * 1000).toISOString()}`,
      );
    }
    if (options.feature !== undefined && !license.features.includes(options.feature)) {
      return yield* fail(
        "LICENSE_ENTITLEMENT_MISSING",
        `License pack: plan ${license.plan} lacks feature ${options.feature} (has: ${
          license.features.join(", ") || "none"
        })`,
      );
    }
    return license;
  });
}

function readNamed(
  env: Env,
  variable: string,
  missing: "LICENSE_MISSING" | "LICENSE_PUBKEYS_MISSING",
  what: string,
): Effect.Effect<string, WorldstreamError> {
  const path = env[variable];
  if (path === undefined || path === "") {
    return Effect.fail(fail(missing, `No ${what}: ${variable} is not set`));
  }
  return Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) =>
      fail(
        missing,
        `No ${what}: ${variable} names ${path}, which ${
          e instanceof Deno.errors.NotFound ? "does not exist" : "cannot be read"
        }`,
      ),
  });
}

/**
 * Reads the pack and key set the environment names and verifies them now (Effect Clock) for
 * `feature` (none: signature and expiry only).
 */
export const checkLicense = Effect.fn("checkLicense")(function* (
  feature: string | undefined,
  env?: Env,
): Effect.fn.Return<License, WorldstreamError> {
  const vars = env ?? Deno.env.toObject();
  const packText = yield* readNamed(vars, LICENSE_ENV.pack, "LICENSE_MISSING", "license pack");
  const keysText = yield* readNamed(
    vars,
    LICENSE_ENV.pubkeys,
    "LICENSE_PUBKEYS_MISSING",
    "license public keys",
  );
  const nowSeconds = (yield* Clock.currentTimeMillis) / 1000;
  return yield* verifyLicensePack(packText, keysText, {
    nowSeconds,
    ...(feature === undefined ? {} : { feature }),
  });
});

/** The license a tier needs, checked (local needs none: succeeds with undefined). */
export function licenseForTier(
  tier: PrivacyTier,
  env?: Env,
): Effect.Effect<License | undefined, WorldstreamError> {
  return tierNeedsLicense(tier) ? checkLicense(TIER_FEATURE[tier], env) : Effect.succeed(undefined);
}

/**
 * The verdict `license verify` prints: VALID with the license, or INVALID with the code, the
 * message and whatever the pack says of itself when it parsed.
 */
export function licenseVerdict(
  feature: string | undefined,
  env?: Env,
): Effect.Effect<LicenseVerdict> {
  const vars = env ?? Deno.env.toObject();
  return checkLicense(feature, vars).pipe(
    Effect.map((license): LicenseVerdict => ({
      status: "VALID",
      reason: null,
      message: `License ${license.kid} (plan ${license.plan}) is valid until ${
        new Date(license.exp * 1000).toISOString()
      }`,
      kid: license.kid,
      plan: license.plan,
      features: license.features,
      exp: license.exp,
    })),
    Effect.catchTag("WorldstreamError", (error) =>
      Effect.succeed<LicenseVerdict>({
        status: "INVALID",
        reason: error.reason,
        message: error.message,
        ...claimsOf(vars[LICENSE_ENV.pack]),
      })),
  );
}

/** What a pack claims (unverified), for an INVALID verdict; nulls where it does not parse. */
function claimsOf(path: string | undefined): Pick<
  LicenseVerdict,
  "kid" | "plan" | "features" | "exp"
> {
  const none = { kid: null, plan: null, features: null, exp: null };
  if (path === undefined || path === "") return none;
  try {
    const license = (JSON.parse(Deno.readTextFileSync(path)) as { license?: unknown })?.license;
    if (license === null || typeof license !== "object") return none;
    const l = license as Record<string, unknown>;
    return {
      kid: typeof l.kid === "string" ? l.kid : null,
      plan: typeof l.plan === "string" ? l.plan : null,
      features: Array.isArray(l.features) && l.features.every((f) => typeof f === "string")
        ? l.features as string[]
        : null,
      exp: typeof l.exp === "number" ? l.exp : null,
    };
  } catch {
    return none;
  }
}

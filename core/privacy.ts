/**
 * The privacy tier's check, one function the supervisor's `authorize` calls before a run opens
 * anything (and the runtime at start): `local` refuses a gate that is not on loopback; `minimized`
 * and `full` need a valid license pack with their feature; `minimized` also needs the pseudonym
 * key and the minimized fields file, and answers one pseudonymizer per selected output that has
 * fields listed. A failed check sends nothing.
 */
import { Effect } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { License } from "../schemas/license.ts";
import type { PrivacyTier } from "../schemas/profile.ts";
import type { RowShape } from "./catalogue.ts";
import { licenseForTier } from "./license.ts";
import type { Profile } from "./profile.ts";
import type { Env } from "./profile_interpolate.ts";
import { loadMinimizedFields, type Pseudonymizer, pseudonymKeyFromEnv } from "./pseudonymize.ts";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** Whether a URL's host is this machine's loopback (what tier `local` allows). */
export function isLoopbackUrl(url: string): boolean {
  return LOOPBACK.has(new URL(url).hostname);
}

/** What the privacy check allows a run: its license (tiers above local) and pseudonymizers. */
export interface PrivacyGrant {
  readonly tier: PrivacyTier;
  readonly license: License | undefined;
  /** Tier minimized: the pseudonymizer of each selected output that has fields listed. */
  readonly pseudonymizers: ReadonlyMap<string, Pseudonymizer>;
}

/**
 * At start: the license the tier needs and, for minimized, the pseudonym key and the minimized
 * fields file's reference, so a misconfigured tier fails before anything is served.
 */
export function checkPrivacyAtStart(
  profile: Pick<Profile, "policy" | "paths">,
  env?: Env,
): Effect.Effect<License | undefined, WorldstreamError> {
  return Effect.gen(function* () {
    const tier = profile.policy.privacy_tier;
    const license = yield* licenseForTier(tier, env);
    if (tier === "minimized") {
      yield* pseudonymKeyFromEnv(env);
      yield* minimizedFieldsPath(profile);
    }
    return license;
  });
}

function minimizedFieldsPath(
  profile: Pick<Profile, "paths">,
): Effect.Effect<string, WorldstreamError> {
  const path = profile.paths.minimizedFields;
  return path === undefined
    ? Effect.fail(fail(
      "MINIMIZED_FIELDS_MISSING",
      "Privacy tier minimized needs governance.minimized_fields_ref in the profile",
    ))
    : Effect.succeed(path);
}

/**
 * Before each run: the tier's whole check for a run that sends `outputIds` (row shapes from the
 * world's interface pack) to the gate at `igBaseUrl`.
 */
export function authorizePrivacy(
  profile: Pick<Profile, "policy" | "paths">,
  run: {
    readonly igBaseUrl: string;
    readonly outputIds: ReadonlyArray<string>;
    readonly rows: ReadonlyMap<string, RowShape>;
  },
  env?: Env,
): Effect.Effect<PrivacyGrant, WorldstreamError> {
  return Effect.gen(function* () {
    const tier = profile.policy.privacy_tier;
    if (tier === "local") {
      if (!isLoopbackUrl(run.igBaseUrl)) {
        return yield* fail(
          "PRIVACY_TIER_FORBIDS_NETWORK",
          `Privacy tier local keeps data on this host; the IG at ${
            new URL(run.igBaseUrl).hostname
          } is not loopback`,
        );
      }
      return { tier, license: undefined, pseudonymizers: new Map() };
    }
    const license = yield* licenseForTier(tier, env);
    if (tier === "full") return { tier, license, pseudonymizers: new Map() };
    const key = yield* pseudonymKeyFromEnv(env);
    const fields = yield* loadMinimizedFields(yield* minimizedFieldsPath(profile), run.rows);
    const pseudonymizers = new Map<string, Pseudonymizer>();
    for (const outputId of run.outputIds) {
      const listed = fields.get(outputId);
      if (listed !== undefined && listed.length > 0) {
        pseudonymizers.set(outputId, { ...key, fields: new Set(listed) });
      }
    }
    return { tier, license, pseudonymizers };
  });
}

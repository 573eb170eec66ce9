/**
 * `worldstream license verify [--profile P]`: checks the license pack WORLDSTREAM_LICENSE_PACK
 * names against the key set WORLDSTREAM_LICENSE_PUBKEYS names (core/license.ts), for the feature
 * the profile's privacy tier needs (tier local needs none: signature and expiry only). Prints the
 * verdict as a sentence, then the last line
 *
 *   {"status":"VALID"|"INVALID","reason":null|CODE,"kid","plan","features","exp"}
 *
 * and exits 0 only when the pack is valid. A bad flag or profile is an error, not a verdict.
 */
import { Effect } from "effect";
import { licenseVerdict, TIER_FEATURE, tierNeedsLicense } from "../core/license.ts";
import { loadProfile } from "../core/profile.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { parseFlags, profileFlag } from "./args.ts";
import type { Outcome } from "./commands.ts";

/** Runs `license verify`; `env` and `print` for tests. */
export function licenseCommand(
  argv: ReadonlyArray<string>,
  options: { readonly env?: Env; readonly print?: (line: string) => void } = {},
): Effect.Effect<Outcome, WorldstreamError> {
  const [sub, ...rest] = argv;
  if (sub !== "verify") {
    return Effect.fail(
      fail("BAD_ARGS", `Usage: license verify [--profile P]; got ${sub ?? "nothing"}`),
    );
  }
  return Effect.gen(function* () {
    const flags = yield* parseFlags(rest, { profile: "string" });
    const vars = options.env ?? Deno.env.toObject();
    const profile = yield* loadProfile(profileFlag(flags, vars), vars);
    const tier = profile.policy.privacy_tier;
    const feature = tierNeedsLicense(tier) ? TIER_FEATURE[tier] : undefined;
    const verdict = yield* licenseVerdict(feature, vars);
    const print = options.print ?? console.log;
    const needs = feature === undefined
      ? `tier local needs no license; checked signature and expiry`
      : `tier ${tier} needs feature ${feature}`;
    print(
      `Profile ${profile.profile_id}, ${needs}: ${verdict.status}: ${verdict.message}`,
    );
    return {
      line: {
        status: verdict.status,
        reason: verdict.reason,
        kid: verdict.kid,
        plan: verdict.plan,
        features: verdict.features,
        exp: verdict.exp,
      },
      ok: verdict.status === "VALID",
    };
  });
}

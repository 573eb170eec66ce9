/**
 * `worldstream audit-verify [--profile P]`: walks the receipt chain in the profile's Postgres from
 * the first receipt and prints one line:
 *
 *   {"status":"OK","count":N}
 *   {"status":"BROKEN","count":N,"first_break":{"index","receipt_id","problem","detail"}}
 *
 * `count` is how many receipts verified (for BROKEN, the intact prefix before the break);
 * `problem` is EDITED, MISSING, REORDERED, BAD_SIGNATURE or BAD_LINK (core/receipt_chain.ts).
 * Verification keys come from the environment (core/receipt_keys.ts): an Ed25519 public key is
 * enough. BROKEN exits 1; a missing key or an unreachable database is an error, not a verdict.
 */
import { Effect } from "effect";
import { auditVerify } from "../actions/audit_verify.ts";
import { postgresLayer } from "../actors/runtime.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { loadProfile } from "../core/profile.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { parseFlags, profileFlag } from "./args.ts";

export type { AuditVerifyResult } from "../actions/audit_verify.ts";

/** Parses the flags, verifies the chain; `ok` is false when it is broken. `env`: for tests. */
export function auditVerifyCommand(
  argv: ReadonlyArray<string>,
  env?: Env,
): Effect.Effect<
  { readonly line: Record<string, unknown>; readonly ok: boolean },
  WorldstreamError
> {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, { profile: "string" });
    const vars = env ?? Deno.env.toObject();
    const profile = yield* loadProfile(profileFlag(flags, vars), vars);
    const result = yield* auditVerify(profile, vars).pipe(Effect.provide(postgresLayer(profile)));
    return { line: { ...result }, ok: result.status === "OK" };
  });
}

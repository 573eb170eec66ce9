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
import { postgresLayer } from "../actors/runtime.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { loadProfile } from "../core/profile.ts";
import { verifierFromEnv } from "../core/receipt_keys.ts";
import { receiptKeyEnv } from "../actors/runtime.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { verifyStoredChain } from "../stores/receipts.ts";
import { parseFlags, profileFlag } from "./args.ts";

/** The `audit-verify` result line. */
export type AuditVerifyResult =
  | { readonly status: "OK"; readonly count: number }
  | {
    readonly status: "BROKEN";
    readonly count: number;
    readonly first_break: {
      readonly index: number;
      readonly receipt_id: string;
      readonly problem: string;
      readonly detail: string;
    };
  };

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
    const verifier = yield* verifierFromEnv(yield* receiptKeyEnv(profile, vars, { create: false }));
    const verdict = yield* verifyStoredChain(verifier).pipe(
      Effect.provide(postgresLayer(profile)),
    );
    const result: AuditVerifyResult = verdict.ok ? { status: "OK", count: verdict.count } : {
      status: "BROKEN",
      count: verdict.index,
      first_break: {
        index: verdict.index,
        receipt_id: verdict.receipt_id,
        problem: verdict.problem,
        detail: verdict.detail,
      },
    };
    return { line: { ...result }, ok: verdict.ok };
  });
}

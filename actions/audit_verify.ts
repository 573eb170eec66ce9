/**
 * Action `audit_verify`: walks the receipt chain stored in Postgres from the first receipt and
 * says whether it is intact (`OK` with the count) or where it first breaks (`BROKEN` with the
 * intact prefix's length and the break: EDITED, MISSING, REORDERED, BAD_SIGNATURE or BAD_LINK, see
 * core/receipt_chain.ts). Verification keys come from the environment (core/receipt_keys.ts); an
 * Ed25519 public key is enough. A missing key or an unreachable database is an error, not a
 * verdict. The `audit-verify` command and `GET /v1/receipts/verify` both answer this.
 */
import { Effect } from "effect";
import { receiptKeyEnv } from "../actors/runtime.ts";
import type { Profile } from "../core/profile.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { verifierFromEnv } from "../core/receipt_keys.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { Postgres } from "../stores/postgres.ts";
import { verifyStoredChain } from "../stores/receipts.ts";

/** The verdict on the stored chain. */
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

/** Verifies the chain in the profile's Postgres with the keys of `env`. */
export function auditVerify(
  profile: Profile,
  env: Env,
): Effect.Effect<AuditVerifyResult, WorldstreamError, Postgres> {
  return Effect.gen(function* () {
    const verifier = yield* verifierFromEnv(yield* receiptKeyEnv(profile, env, { create: false }));
    const verdict = yield* verifyStoredChain(verifier);
    return verdict.ok ? { status: "OK", count: verdict.count } : {
      status: "BROKEN",
      count: verdict.index,
      first_break: {
        index: verdict.index,
        receipt_id: verdict.receipt_id,
        problem: verdict.problem,
        detail: verdict.detail,
      },
    };
  });
}

/**
 * The door every parkable action goes through, whoever calls it (the admin API, the CLI, an
 * approval's runner): `governed(capability, request, who, action)` asks the policy
 * (actors/governance.ts `authorizeOrPark`) and then either runs `action`, or — when the policy
 * answers REQUIRE_APPROVAL — parks `request` as a pending approval and answers {@link Parked}
 * without running anything; DENY fails POLICY_DENIED with the explanation.
 *
 * The action runs under an {@link ApprovalGrant} for exactly this capability and request, so an
 * `authorize` call inside it (checkpoint_reset has one) neither decides nor records again. An
 * approval's runner (actions/approval_runners.ts) calls the same governed entry under the
 * approval's grant: the door lets it through without asking the policy again (the approval is the
 * grant), and the action's own code path runs unchanged.
 */
import { Effect, Schema } from "effect";
import { ApprovalGrant, authorizeOrPark } from "../actors/governance.ts";
import type { Journal } from "../actors/journal.ts";
import { canonicalJson } from "../core/hash.ts";
import type { Profile } from "../core/profile.ts";
import type { JsonObject } from "../schemas/common.ts";
import type { WorldstreamError } from "../schemas/errors.ts";

/** An action parked for an approval: nothing was done (HTTP 202; the CLI's exit code 4). */
export const Parked = Schema.Struct({
  approval_id: Schema.String,
  status: Schema.Literal("PENDING"),
  capability: Schema.String,
  expires_at: Schema.String,
  reason: Schema.String,
}).annotate({ identifier: "ApprovalPending" });
export type Parked = typeof Parked.Type;

/** True for the answer of an action that was parked. */
export function isParked(answer: unknown): answer is Parked {
  return typeof answer === "object" && answer !== null &&
    (answer as { status?: unknown }).status === "PENDING" &&
    typeof (answer as { approval_id?: unknown }).approval_id === "string";
}

/** Who asks, through what, under which profile's policy. */
export interface Asker {
  readonly profile: Pick<Profile, "profile_id" | "policy" | "governance">;
  readonly principal: string;
  /** `api`, `cli`, `operator`, … (a rule condition may name it). */
  readonly source: string;
  readonly runKey?: string;
}

/** Runs `action` when the policy allows it, parks `request` when it asks for an approval. */
export const governed = <A, E, R>(
  capability: string,
  request: JsonObject,
  who: Asker,
  action: Effect.Effect<A, E, R>,
): Effect.Effect<A | Parked, E | WorldstreamError, R | Journal> =>
  Effect.gen(function* () {
    const grant = yield* authorizeOrPark(who.principal, capability, {
      profile: who.profile,
      source: who.source,
      request,
      detail: { request },
      ...(who.runKey === undefined ? {} : { runKey: who.runKey }),
    });
    if (grant.status === "PENDING") {
      return {
        approval_id: grant.approval.approval_id,
        status: "PENDING",
        capability,
        expires_at: grant.approval.expires_at,
        reason: grant.approval.reason,
      } satisfies Parked as Parked;
    }
    const inherited = yield* ApprovalGrant;
    const same = inherited !== undefined && inherited.capability === capability &&
      canonicalJson(inherited.request) === canonicalJson(request);
    return yield* action.pipe(Effect.provideService(
      ApprovalGrant,
      same ? inherited : { capability, request, by: who.principal },
    ));
  });

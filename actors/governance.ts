/**
 * The policy supervisor's one door: `authorize(principal, capability, context)`. The plan step
 * of every run and every action of actions/ call it before anything happens. It decides with the
 * profile's capability registry and policy (core/policy.ts), makes the decision durable, and lets
 * the action go on only on ALLOW: DENY fails POLICY_DENIED, REQUIRE_APPROVAL fails
 * APPROVAL_REQUIRED, each with
 * the decision's explanation as its message, so nothing is done. An action that can be run later
 * calls {@link authorizeOrPark} instead: REQUIRE_APPROVAL parks it as a pending approval
 * (actors/approvals.ts) and answers its id.
 *
 * Every decision is a `policy_snapshot` WAL record (drained into ws_policy_snapshots) and a
 * `policy_decision` receipt on the chain, appended together through the Journal. A caller that
 * has no WAL open (the `publish-ready` command, which runs beside a runtime that holds the WAL's
 * lock) gets the decision as a `policy_decision` JSON log line instead.
 */
import { Context, Effect, Option, Random } from "effect";
import { canonicalJson } from "../core/hash.ts";
import {
  decisionDigest,
  evaluate,
  type PolicyDecision,
  type RequestFacts,
} from "../core/policy.ts";
import type { Profile } from "../core/profile.ts";
import type { JsonObject } from "../schemas/common.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { ApprovalBody } from "../stores/wal_records.ts";
import { parkApproval } from "./approvals.ts";
import { walRecord } from "../stores/wal_records.ts";
import { Journal } from "./journal.ts";

/** What an action tells the door besides who asks for what. */
export interface AuthorizeContext {
  /** The profile whose registry and policy decide. */
  readonly profile: Pick<Profile, "profile_id" | "policy" | "governance">;
  /** Where the request came from: `ready`, `operator`, `api`, … (a rule condition may name it). */
  readonly source?: string;
  /** The run the action belongs to, when it has one. */
  readonly runKey?: string;
  /** Facts worth keeping with the decision (output ids, the dead letter selected, …). */
  readonly detail?: Record<string, unknown>;
  /**
   * The action's request, as it would be parked: an {@link ApprovalGrant} in context answers
   * only for this exact request.
   */
  readonly request?: JsonObject;
}

/**
 * A grant the door honours without asking the policy again: an approved approval (what its
 * runner runs under) or the door's own ALLOW handed on to the action it let through, so the
 * action's own `authorize` call neither decides nor records a second time. It covers exactly
 * one capability and one request.
 */
export interface ApprovalGrantShape {
  readonly capability: string;
  readonly request: JsonObject;
  /** Who granted it: the approver, or the principal the policy allowed. */
  readonly by: string;
  /** The approval it comes from (absent for the door's own ALLOW). */
  readonly approval_id?: string;
}

/** The grant in context, if any (none by default). */
export const ApprovalGrant = Context.Reference<ApprovalGrantShape | undefined>(
  "worldstream/actors/ApprovalGrant",
  { defaultValue: () => undefined },
);

/** The grant in context when it covers `capability` (and `request`, when given). */
const grantFor = (capability: string, request: JsonObject | undefined) =>
  Effect.gen(function* () {
    const grant = yield* ApprovalGrant;
    return grant !== undefined && grant.capability === capability &&
        (request === undefined || canonicalJson(request) === canonicalJson(grant.request))
      ? grant
      : undefined;
  });

/** What a refusal's receipt carries: the explanation `deno task explain` prints. */
export function explanationOf(decision: PolicyDecision): JsonObject {
  return {
    principal: decision.principal,
    capability: decision.capability,
    decision: decision.decision,
    rule: decision.rule,
    rule_text: decision.rule_text,
    risk: decision.risk,
    risk_source: decision.risk_source,
    reason: decision.reason,
  };
}

/** The decision a grant stands for: the policy's explanation, the outcome ALLOW. */
function granted(
  principal: string,
  capability: string,
  context: AuthorizeContext,
  grant: ApprovalGrantShape,
): PolicyDecision {
  const decision = decide(principal, capability, context);
  return grant.approval_id === undefined ? decision : {
    ...decision,
    decision: "ALLOW",
    reason: `${capability} approved as ${grant.approval_id} by ${grant.by}; asked because: ` +
      decision.reason,
  };
}

/** The principal the runtime acts as: `svc:<producer>` (a producer id may already say `svc:`). */
export function servicePrincipal(producer: string): string {
  return producer.startsWith("svc:") ? producer : `svc:${producer}`;
}

/** The request facts rule conditions are checked against. */
function factsOf(context: AuthorizeContext): RequestFacts {
  return {
    profile_id: context.profile.profile_id,
    privacy_tier: context.profile.policy.privacy_tier,
    ...(context.source === undefined ? {} : { source: context.source }),
  };
}

/** Decides without recording (what `explain` prints). */
export function decide(
  principal: string,
  capability: string,
  context: AuthorizeContext,
): PolicyDecision {
  const { registry, policy } = context.profile.governance;
  return evaluate(policy, registry, { principal, capability, facts: factsOf(context) });
}

const hex32 = Effect.gen(function* () {
  let out = "";
  for (let i = 0; i < 4; i++) {
    out += (yield* Random.nextIntBetween(0, 0x1_0000_0000)).toString(16).padStart(8, "0");
  }
  return out;
});

const RECEIPT_STATUS = {
  ALLOW: "pass",
  REQUIRE_APPROVAL: "soft_block",
  DENY: "hard_block",
} as const;

const BADGES = {
  ALLOW: ["policy_allowed"],
  REQUIRE_APPROVAL: ["approval_required"],
  DENY: ["policy_denied"],
} as const;

/** Makes one decision durable: a WAL policy snapshot and its receipt, or a log line. */
const record = Effect.fn("Governance.record")(function* (
  decision: PolicyDecision,
  context: AuthorizeContext,
) {
  const facts = factsOf(context);
  const decisionId = yield* hex32;
  const snapshot = {
    decision_id: decisionId,
    rule: decision.rule,
    rule_text: decision.rule_text,
    risk: decision.risk,
    risk_source: decision.risk_source,
    registry_digest: decision.registry_digest,
    policy_source: context.profile.governance.policy.source,
    facts,
    ...(context.detail === undefined ? {} : { detail: context.detail }),
  };
  const journal = yield* Effect.serviceOption(Journal);
  if (Option.isNone(journal)) {
    yield* Effect.logInfo("policy_decision").pipe(Effect.annotateLogs({
      ...explanationOf(decision),
      policy_digest: decision.policy_digest,
    }));
    return;
  }
  const at = yield* journal.value.now;
  yield* journal.value.append(
    [walRecord("policy_snapshot", {
      run_key: context.runKey ?? null,
      principal: decision.principal,
      capability: decision.capability,
      decision: decision.decision,
      reason: decision.reason,
      policy_digest: decision.policy_digest,
      snapshot: JSON.parse(JSON.stringify(snapshot)),
    }, at)],
    [{
      receipt_id: decisionId,
      kind: "policy_decision",
      status: RECEIPT_STATUS[decision.decision],
      rationale: decision.reason.slice(0, 2048),
      badges: [...BADGES[decision.decision]],
      inputs_digest: decisionDigest(decision, facts),
      actor: decision.principal.slice(0, 256),
      ...(context.runKey === undefined ? {} : { run_key: context.runKey }),
      detail: JSON.parse(JSON.stringify({
        ...explanationOf(decision),
        policy_digest: decision.policy_digest,
        registry_digest: decision.registry_digest,
      })),
    }],
  );
});

/**
 * The one door: decides whether `principal` may use `capability`, records the decision, and
 * answers it on ALLOW; fails POLICY_DENIED (DENY) or APPROVAL_REQUIRED (REQUIRE_APPROVAL) with
 * the explanation otherwise. Recording goes through the Journal when the caller has one.
 */
export const authorize = Effect.fn("authorize")(function* (
  principal: string,
  capability: string,
  context: AuthorizeContext,
): Effect.fn.Return<PolicyDecision, WorldstreamError> {
  const grant = yield* grantFor(capability, context.request);
  if (grant !== undefined) return granted(principal, capability, context, grant);
  const decision = decide(principal, capability, context);
  yield* record(decision, context);
  if (decision.decision === "DENY") return yield* fail("POLICY_DENIED", decision.reason);
  if (decision.decision === "REQUIRE_APPROVAL") {
    return yield* fail("APPROVAL_REQUIRED", decision.reason);
  }
  return decision;
});

/** What {@link authorizeOrPark} answers: go on, or the approval the action now waits for. */
export type Grant =
  | { readonly status: "ALLOWED"; readonly decision: PolicyDecision }
  | {
    readonly status: "PENDING";
    readonly decision: PolicyDecision;
    readonly approval: ApprovalBody;
  };

/**
 * The one door for an action that can run later (its capability has a runner, see
 * actions/approval_runners.ts): like {@link authorize}, but REQUIRE_APPROVAL parks `request` as a
 * pending approval (expiring after `governance.approval_ttl_seconds`) and answers it, nothing done.
 */
export const authorizeOrPark = Effect.fn("authorizeOrPark")(function* (
  principal: string,
  capability: string,
  context: AuthorizeContext & {
    readonly request: JsonObject;
    /**
     * The approval already waiting for this same action, if any: answered instead of parking
     * a second one (a READY of a run that is parked already).
     */
    readonly waiting?: Effect.Effect<ApprovalBody | undefined, WorldstreamError>;
  },
): Effect.fn.Return<Grant, WorldstreamError, Journal> {
  const grant = yield* grantFor(capability, context.request);
  if (grant !== undefined) {
    return { status: "ALLOWED", decision: granted(principal, capability, context, grant) };
  }
  const decision = decide(principal, capability, context);
  yield* record(decision, context);
  if (decision.decision === "DENY") return yield* fail("POLICY_DENIED", decision.reason);
  if (decision.decision === "ALLOW") return { status: "ALLOWED", decision };
  const waiting = context.waiting === undefined ? undefined : yield* context.waiting;
  if (waiting !== undefined) return { status: "PENDING", decision, approval: waiting };
  const ttl = context.profile.governance.approval_ttl_seconds;
  const approval = yield* parkApproval(decision, {
    request: context.request,
    explanation: explanationOf(decision),
    ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
    ...(context.runKey === undefined ? {} : { runKey: context.runKey }),
  });
  return { status: "PENDING", decision, approval };
});

/**
 * Action `approvals`: list parked actions and decide them. Approve → the parked action runs once,
 * as the approver, through its runner (actions/approval_runners.ts); deny → a `policy_denied`
 * receipt; an approval past its expiry is denied as EXPIRED (with that receipt) the next time
 * approvals are listed or decided. Deciding an unknown (APPROVAL_UNKNOWN), expired
 * (APPROVAL_EXPIRED) or already decided (APPROVAL_ALREADY_DECIDED) approval, or one whose action
 * no longer exists (APPROVAL_ACTION_GONE, left pending), fails with its code and changes nothing.
 *
 * Reads come from Postgres after draining the WAL; the admin API runs it on the runtime's Journal
 * and WAL, the `approvals` command on the profile's (with the runtime stopped).
 */
import { Effect, Schema } from "effect";
import {
  type Approval,
  approvalView,
  deciding,
  findApproval,
  listStoredApprovals,
  nowDate,
  recordDecision,
  recordOutcome,
} from "../actors/approvals.ts";
import { ApprovalGrant } from "../actors/governance.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { JsonObject } from "../schemas/common.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { APPROVAL_STATUSES, type ApprovalStatus } from "../stores/wal_records.ts";
import { APPROVAL_RUNNERS } from "./approval_runners.ts";

/** Who expires approvals (the receipts' actor). */
const EXPIRER = "svc:approvals";

/** One approval as listed. */
export const ApprovalLine = Schema.Struct({
  approval_id: Schema.String,
  capability: Schema.String,
  principal: Schema.String,
  status: Schema.Literals(APPROVAL_STATUSES),
  request: JsonObject,
  reason: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  expires_at: Schema.NullOr(Schema.String),
  decided_by: Schema.NullOr(Schema.String),
  decided_at: Schema.NullOr(Schema.String),
  note: Schema.NullOr(Schema.String),
  outcome: Schema.NullOr(JsonObject),
  /** The decision that parked it: principal, capability, rule, rule_text, risk, risk_source, reason. */
  explanation: Schema.NullOr(JsonObject),
}).annotate({ identifier: "Approval" });

/** What deciding answers. */
export const DecisionResult = Schema.Struct({
  approval_id: Schema.String,
  status: Schema.Literals(["APPROVED", "DENIED"]),
  /** Approved: what the action did. */
  outcome: Schema.optionalKey(JsonObject),
}).annotate({ identifier: "ApprovalDecision" });
export type DecisionResult = typeof DecisionResult.Type;

/** Denies (EXPIRED, `policy_denied` receipt) every pending approval whose expiry has passed. */
export const expireDue = Effect.fn("expireDue")(function* () {
  const now = yield* nowDate;
  const pending = yield* listStoredApprovals("PENDING", 10_000);
  const due = pending.filter((a) => a.expires_at !== null && a.expires_at <= now);
  for (const a of due) yield* recordDecision(a, "EXPIRED", EXPIRER, null);
  if (due.length > 0) yield* (yield* WalDrain).drainNow;
  return due.length;
});

/** Approvals, oldest first (pending ones past their expiry are expired first). */
export const listApprovals = Effect.fn("listApprovals")(function* (
  status: ApprovalStatus | undefined,
  limit = 1000,
) {
  yield* (yield* WalDrain).drainNow;
  yield* expireDue();
  return (yield* listStoredApprovals(status, limit)).map(approvalView);
});

/** Approves or denies one pending approval as `actor`; approving runs the parked action once. */
export const decideApproval = (
  id: string,
  decision: {
    readonly decision: "approve" | "deny";
    readonly note?: string;
    readonly actor: string;
    /**
     * False where no runtime runs (the `approvals` command): approving an action that acts on
     * the running runtime (a replay, pause/resume/cancel) fails APPROVAL_NEEDS_RUNTIME, left
     * pending. Default true (the admin API runs inside the runtime).
     */
    readonly runtime?: boolean;
  },
) =>
  Effect.gen(function* () {
    const drain = yield* WalDrain;
    yield* drain.drainNow;
    yield* expireDue();
    const approval = yield* findApproval(id);
    if (approval === undefined) {
      return yield* fail("APPROVAL_UNKNOWN", `No approval has id ${id}`);
    }
    yield* refuseDecided(approval);
    const note = decision.note ?? null;
    if (decision.decision === "deny") {
      yield* recordDecision(approval, "DENIED", decision.actor, note);
      yield* drain.drainNow;
      return { approval_id: id, status: "DENIED" } satisfies DecisionResult as DecisionResult;
    }
    const runner = APPROVAL_RUNNERS[approval.capability];
    if (runner === undefined) {
      return yield* fail(
        "APPROVAL_ACTION_GONE",
        `Approval ${id}: capability ${approval.capability} has no runner; nothing ran`,
      );
    }
    if (runner.runtime && decision.runtime === false) {
      return yield* fail(
        "APPROVAL_NEEDS_RUNTIME",
        `Approval ${id}: ${approval.capability} acts on the running runtime; it stays pending: ` +
          `approve it through the admin API (POST /v1/approvals/${id})`,
      );
    }
    yield* runner.check(approval.request).pipe(
      Effect.mapError((e) => fail(e.reason, `Approval ${id}: ${e.message}`)),
    );
    const approved = yield* recordDecision(approval, "APPROVED", decision.actor, note);
    // The approval is the grant: the action's door lets exactly this request through unasked.
    const ran = yield* Effect.result(
      runner.run(approval.request, decision.actor).pipe(Effect.provideService(ApprovalGrant, {
        capability: approval.capability,
        request: approval.request,
        by: decision.actor,
        approval_id: id,
      })),
    );
    const outcome: JsonObject = ran._tag === "Success"
      ? ran.success
      : { status: "FAILED", reason: ran.failure.reason, message: ran.failure.message };
    yield* recordOutcome(approved, outcome, ran._tag === "Success");
    yield* drain.drainNow;
    if (ran._tag === "Failure") return yield* Effect.fail(ran.failure as WorldstreamError);
    return {
      approval_id: id,
      status: "APPROVED",
      outcome,
    } satisfies DecisionResult as DecisionResult;
  }).pipe(deciding.withPermits(1));

function refuseDecided(a: Approval) {
  if (a.status === "PENDING") return Effect.void;
  if (a.status === "EXPIRED") {
    return Effect.fail(fail(
      "APPROVAL_EXPIRED",
      `Approval ${a.approval_id} expired at ${a.expires_at?.toISOString()}; nothing ran`,
    ));
  }
  return Effect.fail(fail(
    "APPROVAL_ALREADY_DECIDED",
    `Approval ${a.approval_id} was ${a.status.toLowerCase()} by ${a.decided_by} already`,
  ));
}

/**
 * Approvals: actions the policy parked (REQUIRE_APPROVAL) until an operator decides them. Parking
 * and every decision are `approval` WAL records appended through the Journal with their receipt,
 * drained into `ws_approvals` (sql/postgres/0006_approvals.sql); reads come from Postgres after a
 * drain, like dead letters. Deciding runs under one permit per process, so one approval is never
 * decided twice by two requests racing; the drain only moves a PENDING row on, so it is never
 * decided twice across restarts either.
 *
 * Receipts: `approval_requested` (soft_block) when parked, `approval_granted` (pass) when
 * approved, `policy_denied` (hard_block) when denied or expired, `approval_executed` with what the
 * approved action did (pass) or why it failed (hard_block).
 */
import { Clock, Effect, Random, Schema, Semaphore } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import type { PolicyDecision } from "../core/policy.ts";
import { JsonObject, NonEmptyString } from "../schemas/common.ts";
import { decodeWith } from "../schemas/decode.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import {
  APPROVAL_STATUSES,
  type ApprovalBody,
  type ApprovalStatus,
  walRecord,
} from "../stores/wal_records.ts";
import { Journal } from "./journal.ts";
import { Wal } from "./wal/writer.ts";

/** How long a parked action waits when the profile does not say (`governance.approval_ttl_seconds`). */
export const DEFAULT_APPROVAL_TTL_SECONDS = 3600;

/** One approval as read back from Postgres. */
export const Approval = Schema.Struct({
  approval_id: NonEmptyString,
  capability: NonEmptyString,
  principal: NonEmptyString,
  status: Schema.Literals(APPROVAL_STATUSES),
  request: JsonObject,
  reason: Schema.NullOr(Schema.String),
  created_at: Schema.Date,
  expires_at: Schema.NullOr(Schema.Date),
  decided_by: Schema.NullOr(Schema.String),
  decided_at: Schema.NullOr(Schema.Date),
  note: Schema.NullOr(Schema.String),
  outcome: Schema.NullOr(JsonObject),
  /** The decision that parked it (null for approvals parked before 0007). */
  explanation: Schema.optionalKey(Schema.NullOr(JsonObject)),
});
export type Approval = typeof Approval.Type;

/** An approval as answered to callers (times as ISO text). */
export interface ApprovalView {
  readonly approval_id: string;
  readonly capability: string;
  readonly principal: string;
  readonly status: ApprovalStatus;
  readonly request: JsonObject;
  readonly reason: string | null;
  readonly created_at: string;
  readonly expires_at: string | null;
  readonly decided_by: string | null;
  readonly decided_at: string | null;
  readonly note: string | null;
  readonly outcome: JsonObject | null;
  readonly explanation: JsonObject | null;
}

/** The view of a stored approval. */
export function approvalView(a: Approval): ApprovalView {
  return {
    ...a,
    explanation: a.explanation ?? null,
    created_at: a.created_at.toISOString(),
    expires_at: a.expires_at?.toISOString() ?? null,
    decided_at: a.decided_at?.toISOString() ?? null,
  };
}

const FIND = pgQuery("approval_find");
const LIST = pgQuery("approval_list");
const decodeRow = decodeWith(Approval, "WAL_RECORD_INVALID", "ws_approvals row");

/** One approval by id from Postgres (drain first to see what the WAL holds). */
export const findApproval = Effect.fn("findApproval")(function* (id: string) {
  const [row] = yield* (yield* Postgres).query(FIND, [id]);
  return row === undefined ? undefined : yield* decodeRow(row);
});

/** Approvals from Postgres, oldest first, optionally of one status. */
export const listStoredApprovals = Effect.fn("listStoredApprovals")(function* (
  status: ApprovalStatus | undefined,
  limit: number,
) {
  const rows = yield* (yield* Postgres).query(LIST, [status ?? null, limit]);
  return yield* Effect.forEach(rows, decodeRow);
});

const hex32 = Effect.gen(function* () {
  let out = "";
  for (let i = 0; i < 4; i++) {
    out += (yield* Random.nextIntBetween(0, 0x1_0000_0000)).toString(16).padStart(8, "0");
  }
  return out;
});

/** What parking needs besides the decision. */
export interface ParkRequest {
  /** The action's request, enough to run it later (its runner decodes it). */
  readonly request: JsonObject;
  /** How long it may wait (default {@link DEFAULT_APPROVAL_TTL_SECONDS}). */
  readonly ttlSeconds?: number;
  /** The decision's explanation (governance.ts `explanationOf`). */
  readonly explanation?: JsonObject;
  readonly runKey?: string;
}

/**
 * Parks the action `decision` escalated: an `approval` record (PENDING) and an
 * `approval_requested` receipt, in one Journal append. Answers the stored body.
 */
export const parkApproval = Effect.fn("parkApproval")(function* (
  decision: PolicyDecision,
  park: ParkRequest,
) {
  const journal = yield* Journal;
  const at = yield* journal.now;
  const ttl = park.ttlSeconds ?? DEFAULT_APPROVAL_TTL_SECONDS;
  const body: ApprovalBody = {
    approval_id: yield* hex32,
    capability: decision.capability,
    principal: decision.principal,
    status: "PENDING",
    request: park.request,
    reason: decision.reason,
    created_at: at.toISOString(),
    expires_at: new Date(at.getTime() + ttl * 1000).toISOString(),
    decided_by: null,
    note: null,
    outcome: null,
    ...(park.explanation === undefined ? {} : { explanation: park.explanation }),
  };
  yield* journal.append([walRecord("approval", body, at)], [
    approvalReceipt(body, {
      kind: "approval_requested",
      status: "soft_block",
      badges: ["approval_required"],
      actor: decision.principal,
      rationale: `${decision.capability} for ${decision.principal} waits for an approval until ` +
        `${body.expires_at}: ${decision.reason}`,
      runKey: park.runKey,
    }),
  ]);
  return body;
});

/** The stored row as a WAL body again (what a decision record starts from). */
function bodyOf(a: Approval): ApprovalBody {
  const view = approvalView(a);
  return {
    approval_id: view.approval_id,
    capability: view.capability,
    principal: view.principal,
    status: view.status,
    request: view.request,
    reason: view.reason ?? "",
    created_at: view.created_at,
    expires_at: view.expires_at ?? view.created_at,
    decided_by: view.decided_by,
    note: view.note,
    outcome: view.outcome,
    ...(view.explanation === null ? {} : { explanation: view.explanation }),
  };
}

/**
 * The approval still waiting (PENDING, unexpired) for `capability` whose request matches, if any:
 * what Postgres holds, overlaid with the WAL's undrained approval records (a decision not drained
 * yet wins over the row it moves on), so a park made a moment ago is seen without a drain.
 */
export const waitingApproval = Effect.fn("waitingApproval")(function* (
  capability: string,
  matches: (request: JsonObject) => boolean,
) {
  const byId = new Map<string, ApprovalBody>();
  for (const a of yield* listStoredApprovals("PENDING", 10_000)) byId.set(a.approval_id, bodyOf(a));
  for (const r of yield* (yield* Wal).pending) {
    if (r.kind !== "approval") continue;
    const body = r.body as ApprovalBody;
    byId.set(body.approval_id, body);
  }
  const now = (yield* nowDate).toISOString();
  for (const body of byId.values()) {
    if (
      body.status === "PENDING" && body.capability === capability && body.expires_at > now &&
      matches(body.request)
    ) return body;
  }
  return undefined;
});

/**
 * Records a decision on a PENDING approval: APPROVED (`approval_granted`), DENIED or EXPIRED
 * (`policy_denied`, the explanation kept), in one Journal append. Answers the new body.
 */
export const recordDecision = Effect.fn("recordDecision")(function* (
  approval: Approval,
  status: Exclude<ApprovalStatus, "PENDING">,
  by: string,
  note: string | null,
) {
  const journal = yield* Journal;
  const at = yield* journal.now;
  const body: ApprovalBody = { ...bodyOf(approval), status, decided_by: by, note };
  const why = status === "EXPIRED"
    ? `expired unapproved at ${body.expires_at}`
    : status === "DENIED"
    ? `denied by ${by}${note === null ? "" : ` (${note})`}`
    : `approved by ${by}${note === null ? "" : ` (${note})`}`;
  yield* journal.append([walRecord("approval", body, at)], [
    status === "APPROVED"
      ? approvalReceipt(body, {
        kind: "approval_granted",
        status: "pass",
        badges: ["approval_granted"],
        actor: by,
        rationale: `${body.capability} for ${body.principal} ${why}`,
      })
      : approvalReceipt(body, {
        kind: "policy_denied",
        status: "hard_block",
        badges: ["policy_denied"],
        actor: by,
        rationale: `${body.capability} for ${body.principal} ${why}; asked because: ` +
          body.reason,
      }),
  ]);
  return body;
});

/** Records what an approved action did (or why it failed) on its approval. */
export const recordOutcome = Effect.fn("recordOutcome")(function* (
  body: ApprovalBody,
  outcome: JsonObject,
  ok: boolean,
) {
  const journal = yield* Journal;
  const at = yield* journal.now;
  const done: ApprovalBody = { ...body, outcome };
  yield* journal.append(
    [walRecord("approval", done, at, sha256Hex(`approval|${body.approval_id}|outcome`))],
    [approvalReceipt(done, {
      kind: "approval_executed",
      status: ok ? "pass" : "hard_block",
      badges: [ok ? "approval_executed" : "approval_failed"],
      actor: body.decided_by ?? body.principal,
      rationale: `${body.capability} approved as ${body.approval_id} ${ok ? "ran" : "failed"}`,
    })],
  );
  return done;
});

/** Now, from the Effect Clock (tests move it). */
export const nowDate = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms)));

/** One decision at a time in this process (a second caller waits and then sees it decided). */
export const deciding = Semaphore.makeUnsafe(1);

function approvalReceipt(
  body: ApprovalBody,
  r: {
    kind: string;
    status: ReceiptDraft["status"];
    badges: Array<string>;
    actor: string;
    rationale: string;
    runKey?: string | undefined;
  },
): ReceiptDraft {
  return {
    kind: r.kind,
    status: r.status,
    rationale: r.rationale.slice(0, 2048),
    badges: r.badges,
    inputs_digest: sha256Hex(canonicalJson({ capability: body.capability, request: body.request })),
    actor: r.actor.slice(0, 256),
    ...(r.runKey === undefined ? {} : { run_key: r.runKey }),
    detail: JSON.parse(JSON.stringify({
      // The explanation of the decision that parked it (rule, rule_text, risk, risk_source), then
      // the approval's own facts over it.
      ...(body.explanation ?? {}),
      approval_id: body.approval_id,
      capability: body.capability,
      principal: body.principal,
      status: body.status,
      request: body.request,
      reason: body.reason,
      expires_at: body.expires_at,
      decided_by: body.decided_by,
      note: body.note,
      ...(body.outcome === null ? {} : { outcome: body.outcome }),
    })),
  };
}

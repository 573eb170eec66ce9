/**
 * Approvals, operator only: `GET /v1/approvals` lists parked actions (oldest first; pending ones
 * past their expiry are expired first) and `POST /v1/approvals/{id}` `{decision: "approve"|"deny",
 * note?}` decides one (actions/approvals.ts): approve runs the parked action once as the operator,
 * deny receipts `policy_denied`. Both run on the runtime's Journal and WAL.
 */
import { Effect, Layer, Schema } from "effect";
import {
  ApprovalLine,
  decideApproval,
  DecisionResult,
  listApprovals,
} from "../../actions/approvals.ts";
import { APPROVAL_STATUSES } from "../../stores/wal_records.ts";
import { DeadLetters } from "../../stores/dead_letters.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { Id, Limit } from "./params.ts";

/** `POST /v1/approvals/{id}`'s body. */
export const DecisionRequest = Schema.Struct({
  decision: Schema.Literals(["approve", "deny"]),
  note: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(1000))),
}).annotate({ identifier: "DecisionRequest" });

/** The answer of an action parked for approval (HTTP 202). */
export const ApprovalPending = Schema.Struct({
  approval_id: Schema.String,
  status: Schema.Literal("PENDING"),
  expires_at: Schema.String,
  reason: Schema.String,
}).annotate({ identifier: "ApprovalPending" });

const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.orDie(DeadLetters.layer)));

/** The approvals routes. */
export const approvalsRoutes: RouteModule = {
  name: "approvals",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/approvals",
      access: "operator",
      summary: "Parked actions, oldest first, by status (pending past expiry are expired first)",
      query: Schema.Struct({
        status: Schema.optionalKey(Schema.Literals(APPROVAL_STATUSES)),
        limit: Schema.optionalKey(Limit),
      }),
      response: Schema.Struct({ approvals: Schema.Array(ApprovalLine) }),
      handle: ({ query }) =>
        Effect.map(
          listApprovals(query.status, query.limit ?? 100),
          (approvals) => ({ approvals }),
        ),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/approvals/{id}",
      access: "operator",
      summary: "Approves (runs the parked action once) or denies (policy_denied receipt) one",
      params: Schema.Struct({ id: Id }),
      body: DecisionRequest,
      response: DecisionResult,
      handle: ({ params, body, principal }) =>
        withStore(decideApproval(params.id, {
          decision: body.decision,
          ...(body.note === undefined ? {} : { note: body.note }),
          actor: principal?.name ?? "user:operator",
        })),
    }),
  ],
};

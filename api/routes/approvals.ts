/**
 * Approvals, operator only: `GET /v1/approvals` lists parked actions (oldest first; pending ones
 * past their expiry are expired first) and `POST /v1/approvals/{id}` `{decision: "approve"|"deny",
 * note?}` decides one (actions/approvals.ts): approve runs the parked action once as the operator,
 * deny receipts `policy_denied`. Both run on the runtime's Journal and WAL. Every parkable action's
 * route (checkpoint reset/undo, dead letter retry/purge, replay, pause/resume/cancel) answers 202
 * {@link ApprovalPending} when the policy parks it ({@link asking}, {@link parkedStatus}).
 */
import { Effect, Layer, Schema } from "effect";
import {
  ApprovalLine,
  decideApproval,
  DecisionResult,
  listApprovals,
} from "../../actions/approvals.ts";
import { type Asker, isParked, Parked } from "../../actions/governed.ts";
import { RunConfig } from "../../actors/run_config.ts";
import { APPROVAL_STATUSES } from "../../stores/wal_records.ts";
import type { Principal } from "../auth.ts";
import { DeadLetters } from "../../stores/dead_letters.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { Id, Limit } from "./params.ts";

/** `POST /v1/approvals/{id}`'s body. */
export const DecisionRequest = Schema.Struct({
  decision: Schema.Literals(["approve", "deny"]),
  note: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(1000))),
}).annotate({ identifier: "DecisionRequest" });

/** The answer of an action parked for approval (HTTP 202). */
export const ApprovalPending = Parked;

/** 202 for an action parked for approval, 200 for one done. */
export const parkedStatus = (answer: unknown): number => isParked(answer) ? 202 : 200;

/** Runs a governed action (actions/governed.ts) as the token's principal, under the runtime's profile. */
export const asking = <A, E, R>(
  principal: Principal | undefined,
  action: (who: Asker) => Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const { profile } = yield* RunConfig;
    return yield* action({
      profile,
      principal: principal?.name ?? "user:anonymous",
      source: "api",
    });
  });

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

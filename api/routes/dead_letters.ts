/**
 * Dead letters, handled while the runtime runs: `GET /v1/dead-letters` lists them (oldest first,
 * cursor paging on `seq`), `POST /v1/dead-letters/{id}/retry` re-posts one to the gate
 * (actions/dead_letter_retry.ts) and `POST /v1/dead-letters/purge` closes the selected open ones
 * without sending (actions/dead_letter_purge.ts). Both mutations go through the running runtime's
 * Journal, WAL and gate client — the one writer of the receipt chain — so nothing needs the
 * runtime stopped, and each is receipted under the caller's principal name. Each is authorized
 * first (actions/governed.ts) as `deadletter.retry` / `deadletter.purge`; the shipped policy
 * escalates a purge (CRITICAL) to an approval, so it is parked and answered 202
 * `{approval_id, status: "PENDING", ...}` (api/routes/approvals.ts decides); so is a retry when a
 * policy escalates it.
 */
import { Effect, Layer, Schema } from "effect";
import { RunConfig } from "../../actors/run_config.ts";
import { listDeadLetters } from "../../actions/dead_letter_list.ts";
import { governedPurge, PurgeSummary } from "../../actions/dead_letter_purge.ts";
import {
  governedRetry,
  RetrySummary,
  retryTargetAllowed,
} from "../../actions/dead_letter_retry.ts";
import { fail } from "../../schemas/errors.ts";
import { DeadLetters } from "../../stores/dead_letters.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { ApprovalPending, asking, parkedStatus } from "./approvals.ts";
import { Cursor, Id, Limit } from "./params.ts";

const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.orDie(DeadLetters.layer)));

/** One dead letter as listed. */
export const DeadLetterLine = Schema.Struct({
  id: Schema.String,
  seq: Schema.Int,
  status: Schema.Literals(["OPEN", "CLOSED"]),
  run_key: Schema.String,
  platform_run_id: Schema.NullOr(Schema.String),
  output_id: Schema.String,
  event_id: Schema.String,
  attempts: Schema.Int,
  retries: Schema.Int,
  last_status: Schema.NullOr(Schema.Int),
  reason: Schema.String,
  at: Schema.String,
  last_retry_at: Schema.NullOr(Schema.String),
  closed_at: Schema.NullOr(Schema.String),
  closed_receipt_id: Schema.NullOr(Schema.String),
}).annotate({ identifier: "DeadLetter" });

const MAX_PURGE_IDS = 1000;

/** `POST /v1/dead-letters/purge`'s body: ids, or `all: true` with optional filters. */
export const PurgeRequest = Schema.Struct({
  ids: Schema.optionalKey(Schema.Array(Id).check(Schema.isMaxLength(MAX_PURGE_IDS))),
  all: Schema.optionalKey(Schema.Boolean),
  run_key: Schema.optionalKey(Id),
  platform_run_id: Schema.optionalKey(Id),
  output_id: Schema.optionalKey(Id),
  limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100_000 }))),
}).annotate({ identifier: "PurgeRequest" });

/** The dead letters routes. */
export const deadLettersRoutes: RouteModule = {
  name: "dead-letters",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/dead-letters",
      summary: "Dead letters, oldest first, by status, run, platform run and output",
      query: Schema.Struct({
        status: Schema.optionalKey(Schema.Literals(["open", "closed", "all"])),
        run: Schema.optionalKey(Id),
        platform_run: Schema.optionalKey(Id),
        output: Schema.optionalKey(Id),
        after: Schema.optionalKey(Cursor),
        limit: Schema.optionalKey(Limit),
      }),
      response: Schema.Struct({
        dead_letters: Schema.Array(DeadLetterLine),
        /** The `after` of the next page, null on the last. */
        next: Schema.NullOr(Schema.String),
      }),
      handle: ({ query }) =>
        Effect.gen(function* () {
          const lines: Array<typeof DeadLetterLine.Type> = [];
          const status = query.status ?? "open";
          const result = yield* withStore(listDeadLetters({
            filter: {
              ...(query.run === undefined ? {} : { runKey: query.run }),
              ...(query.platform_run === undefined ? {} : { platformRunId: query.platform_run }),
              ...(query.output === undefined ? {} : { outputId: query.output }),
            },
            ...(status === "all" ? {} : { status: status === "open" ? "OPEN" : "CLOSED" }),
            limit: query.limit ?? 100,
            envelopes: false,
            ...(query.after === undefined ? {} : { afterSeq: query.after }),
          }, (line) => Effect.sync(() => void lines.push(line as typeof DeadLetterLine.Type))));
          return {
            dead_letters: lines,
            next: result.more ? String(lines[lines.length - 1].seq) : null,
          };
        }),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/dead-letters/{id}/retry",
      summary: "Re-posts one dead letter to the gate; ADMIT or DUPLICATE closes it (receipted)",
      params: Schema.Struct({ id: Id }),
      response: Schema.Union([RetrySummary, ApprovalPending]),
      status: parkedStatus,
      handle: ({ params, principal }) =>
        Effect.gen(function* () {
          const config = yield* RunConfig;
          yield* retryTargetAllowed(config);
          // An unknown id is refused now, not after an operator approved a retry of nothing.
          if ((yield* withStore(DeadLetters.use((d) => d.find(params.id)))) === undefined) {
            return yield* fail("DEAD_LETTER_NOT_FOUND", `No dead letter has id ${params.id}`);
          }
          return yield* withStore(asking(principal, (who) =>
            governedRetry({ id: params.id }, who, {
              courier: config.courier,
              actor: who.principal,
            })));
        }),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/dead-letters/purge",
      summary:
        "Closes the selected open dead letters without sending them (receipted); 202 when parked for approval",
      body: PurgeRequest,
      response: Schema.Union([PurgeSummary, ApprovalPending]),
      status: parkedStatus,
      handle: ({ body, principal }) =>
        Effect.gen(function* () {
          const filtered = body.run_key !== undefined || body.platform_run_id !== undefined ||
            body.output_id !== undefined || body.limit !== undefined;
          if ((body.ids === undefined) === (body.all !== true) || (body.ids && filtered)) {
            return yield* fail(
              "ADMIN_BODY_INVALID",
              'body: give either "ids" or "all": true (with run_key, platform_run_id, output_id, limit)',
            );
          }
          const selection = body.ids !== undefined ? { ids: body.ids } : {
            all: {
              ...(body.run_key === undefined ? {} : { runKey: body.run_key }),
              ...(body.platform_run_id === undefined
                ? {}
                : { platformRunId: body.platform_run_id }),
              ...(body.output_id === undefined ? {} : { outputId: body.output_id }),
            },
            ...(body.limit === undefined ? {} : { limit: body.limit }),
          };
          // An unknown id is refused now, not after an operator approved a purge of nothing.
          for (const id of body.ids ?? []) {
            if ((yield* withStore(DeadLetters.use((d) => d.find(id)))) === undefined) {
              return yield* fail("DEAD_LETTER_NOT_FOUND", `No dead letter has id ${id}`);
            }
          }
          return yield* withStore(asking(principal, (who) => governedPurge(selection, who)));
        }),
    }),
  ],
};

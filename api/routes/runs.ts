/**
 * Runs: `GET /v1/runs` (each run as its run receipts tell it, newest first, and each READY
 * message's latest decision from the READY ledger), `GET /v1/runs/{run}` (one run by run key or
 * READY message id: its receipts' story, every ledger decision on its READY, its checkpoints and,
 * while it streams, its live progress) and `POST /v1/runs` (submit a READY control-bus envelope:
 * it takes the control bus's own READY path, actors/control_bus.ts, with the same checks and the
 * same ledger; 202 once its run is queued).
 *
 * Reads drain the WAL to Postgres first, so a decision or receipt made a moment ago is listed.
 */
import { Effect, Schema } from "effect";
import { ControlBus } from "../../actors/control_bus.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { WalDrain } from "../../actors/wal/drain.ts";
import { ControlBusEnvelope } from "../../schemas/control_bus.ts";
import { fail, type WorldstreamError } from "../../schemas/errors.ts";
import { REASON_CODES, type ReasonCode } from "../../schemas/reasons.ts";
import { pgQuery, Postgres } from "../../stores/postgres.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { Id, Limit } from "./params.ts";
import { CheckpointRow, checkpointRows } from "./checkpoints.ts";

const RUNS = pgQuery("admin_runs");
const LEDGER = pgQuery("admin_ready_ledger");
const Json = Schema.Unknown;

/** A run as its receipts tell it. */
export const RunSummary = Schema.Struct({
  run_key: Schema.String,
  /** STREAMED, FAILED, … from its latest run_end; RUNNING while in flight; INTERRUPTED when it
   * started again or last and never ended (a crash or a stop cut it off). */
  status: Schema.String,
  reason: Schema.NullOr(Schema.String),
  message_id: Schema.NullOr(Schema.String),
  platform_run_id: Schema.NullOr(Schema.String),
  engine_run_root: Schema.NullOr(Schema.String),
  output_ids: Schema.Array(Schema.String),
  /** How often it started (a resume after a crash or a stop is another start). */
  starts: Schema.Int,
  started_at: Schema.NullOr(Schema.String),
  ended_at: Schema.NullOr(Schema.String),
  emitted: Schema.NullOr(Schema.Int),
  dead_lettered: Schema.NullOr(Schema.Int),
  in_flight: Schema.Boolean,
}).annotate({ identifier: "RunSummary" });
export type RunSummary = typeof RunSummary.Type;

/** One READY-ledger decision. */
export const ReadyDecisionRow = Schema.Struct({
  message_id: Schema.String,
  status: Schema.String,
  reason: Schema.NullOr(Schema.String),
  platform_run_id: Schema.NullOr(Schema.String),
  scenario_run_id: Schema.NullOr(Schema.String),
  attempt: Schema.Int,
  /** Decisions the message has had so far. */
  attempts: Schema.Int,
  recorded_at: Schema.String,
  detail: Json,
}).annotate({ identifier: "ReadyDecision" });
export type ReadyDecisionRow = typeof ReadyDecisionRow.Type;

/** What `POST /v1/runs` answers. */
export const RunSubmitted = Schema.Struct({
  message_id: Schema.String,
  /** ACCEPTED (queued: 202), or how the READY was settled without a run (200). */
  status: Schema.String,
  reason: Schema.NullOr(Schema.String),
}).annotate({ identifier: "RunSubmitted" });

const LiveOutput = Schema.Struct({
  output_id: Schema.String,
  total: Schema.Int,
  emitted: Schema.Int,
  delivered: Schema.Int,
  dead_lettered: Schema.Int,
  position: Schema.NullOr(Schema.Int),
  event_time: Schema.NullOr(Schema.String),
});

/** `GET /v1/runs/{run}`. */
export const RunDetail = Schema.Struct({
  run: Schema.NullOr(RunSummary),
  ready: Schema.Array(ReadyDecisionRow),
  checkpoints: Schema.Array(CheckpointRow),
  live: Schema.Array(LiveOutput),
}).annotate({ identifier: "RunDetail" });

interface RunRow {
  readonly run_key: string;
  readonly attempts: number;
  readonly started_at: Date | string | null;
  readonly ended_at: Date | string | null;
  readonly start_seq: number | string | null;
  readonly end_seq: number | string | null;
  readonly start_detail: Record<string, unknown> | null;
  readonly end_detail: Record<string, unknown> | null;
}

const iso = (d: Date | string | null) => d === null ? null : new Date(d).toISOString();
const text = (v: unknown) => typeof v === "string" ? v : null;
const int = (v: unknown) => typeof v === "number" && Number.isInteger(v) ? v : null;

/** Runs from their receipts (after draining the WAL), newest first. */
function runSummaries(filter: { runKey?: string; messageId?: string; limit: number }) {
  return Effect.gen(function* () {
    yield* (yield* WalDrain).drainNow;
    const pg = yield* Postgres;
    const inFlight = new Set((yield* (yield* Supervisor).progress).map((o) => o.run_key));
    const rows = yield* pg.query<RunRow>(RUNS, [
      filter.runKey ?? null,
      filter.messageId ?? null,
      filter.limit,
    ]);
    return rows.map((r): RunSummary => {
      const start = r.start_detail ?? {};
      const end = r.end_detail ?? {};
      const ended = r.end_seq !== null && Number(r.end_seq) > Number(r.start_seq ?? 0);
      const live = inFlight.has(r.run_key);
      return {
        run_key: r.run_key,
        status: live ? "RUNNING" : ended ? text(end.status) ?? "ENDED" : "INTERRUPTED",
        reason: ended && !live ? text(end.reason) : null,
        message_id: text(start.message_id),
        platform_run_id: text(start.platform_run_id),
        engine_run_root: text(start.engine_run_root),
        output_ids: Array.isArray(start.output_ids) ? start.output_ids.map(String) : [],
        starts: Number(r.attempts),
        started_at: iso(r.started_at),
        ended_at: ended ? iso(r.ended_at) : null,
        emitted: ended ? int(end.emitted) : null,
        dead_lettered: ended ? int(end.dead_lettered) : null,
        in_flight: live,
      };
    });
  });
}

interface LedgerRow {
  readonly message_id: string;
  readonly status: string;
  readonly reason: string | null;
  readonly platform_run_id: string | null;
  readonly scenario_run_id: string | null;
  readonly attempt: number;
  readonly attempts: number;
  readonly recorded_at: Date | string;
  readonly detail: unknown;
}

function ledgerRows(messageId: string | undefined, limit: number) {
  return Effect.gen(function* () {
    const rows = yield* (yield* Postgres).query<LedgerRow>(LEDGER, [messageId ?? null, limit]);
    return rows.map((r): ReadyDecisionRow => ({
      message_id: r.message_id,
      status: r.status,
      reason: r.reason,
      platform_run_id: r.platform_run_id,
      scenario_run_id: r.scenario_run_id,
      attempt: Number(r.attempt),
      attempts: Number(r.attempts),
      recorded_at: new Date(r.recorded_at).toISOString(),
      detail: r.detail ?? {},
    }));
  });
}

/** A reason code from a settlement's free text (INTERNAL_ERROR when it is none). */
function reasonOf(reason: string | null): ReasonCode {
  return (REASON_CODES as ReadonlyArray<string>).includes(reason ?? "")
    ? reason as ReasonCode
    : "INTERNAL_ERROR";
}

/** The runs routes. */
export const runsRoutes: RouteModule = {
  name: "runs",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/runs",
      summary: "Runs (from their run receipts) and every READY message's latest decision",
      query: Schema.Struct({ limit: Schema.optionalKey(Limit) }),
      response: Schema.Struct({
        runs: Schema.Array(RunSummary),
        ready: Schema.Array(ReadyDecisionRow),
      }),
      handle: ({ query }) =>
        Effect.gen(function* () {
          const limit = query.limit ?? 100;
          const runs = yield* runSummaries({ limit });
          return { runs, ready: yield* ledgerRows(undefined, limit) };
        }),
    }),
    jsonRoute({
      method: "get",
      path: "/v1/runs/{run}",
      summary:
        "One run by run key or READY message id: receipts, ledger, checkpoints, live progress",
      params: Schema.Struct({ run: Id }),
      response: RunDetail,
      handle: ({ params }) =>
        Effect.gen(function* () {
          const byKey = yield* runSummaries({ runKey: params.run, limit: 1 });
          const run = byKey[0] ??
            (yield* runSummaries({ messageId: params.run, limit: 1 }))[0];
          const messageId = run?.message_id ?? params.run;
          const ready = yield* ledgerRows(messageId, 1000);
          if (run === undefined && ready.length === 0) {
            return yield* fail(
              "RUN_NOT_FOUND",
              `No run has the run key or READY message id ${params.run}`,
            );
          }
          const progress = run === undefined
            ? []
            : (yield* (yield* Supervisor).progress).filter((o) => o.run_key === run.run_key);
          return {
            run: run ?? null,
            ready,
            checkpoints: run === undefined
              ? []
              : yield* checkpointRows({ runKey: run.run_key, limit: 1000 }),
            live: progress.map((o) => ({
              output_id: o.output_id,
              total: o.total,
              emitted: o.handed_over,
              delivered: o.emitted,
              dead_lettered: o.dead_lettered,
              position: o.position?.seq ?? null,
              event_time: o.position?.ts_utc ?? null,
            })),
          };
        }),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/runs",
      summary: "Submit a READY control-bus envelope: the bus's checks and ledger; 202 once queued",
      body: ControlBusEnvelope,
      response: RunSubmitted,
      status: (answer) => answer.status === "ACCEPTED" ? 202 : 200,
      handle: ({ body }) =>
        Effect.gen(function* () {
          const bus = yield* ControlBus;
          const answer = yield* bus.submit(body.message_id, JSON.stringify(body));
          if (answer._tag === "Accepted") {
            return { message_id: answer.message_id, status: "ACCEPTED", reason: null };
          }
          const s = answer.settlement;
          if (s.status === "FAILED" || s.status === "DEFERRED_DOWNSTREAM_NOT_READY") {
            return yield* Effect.fail<WorldstreamError>(fail(
              reasonOf(s.reason),
              `The READY ${s.message_id} was ${
                s.status === "FAILED" ? "refused" : "deferred"
              }: ${s.reason} (recorded in the READY ledger)`,
            ));
          }
          return { message_id: s.message_id, status: s.status, reason: s.reason };
        }),
    }),
  ],
};

/**
 * `GET /v1/status`: what the runtime is doing now, in one answer — readiness and its problems, the
 * supervised actors and their state, the run in flight and the runs queued behind it, and per
 * output of the run in flight: emitted (handed to the courier), delivered (answered by the gate),
 * dead-lettered, what the lane holds (queued or in flight), the last acknowledged position and its
 * event time, events per second, pacing lateness p50/p99; and the WAL's backlog. It reads
 * in-memory state only (Supervisor, Health, the actor registry, the WAL's counters), so polling
 * it costs the stream nothing it would notice.
 */
import { Clock, Effect, Schema } from "effect";
import { Health } from "../../actors/health.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { actorStatesNow } from "../../core/supervise.ts";
import { jsonRoute, type RouteModule } from "../route.ts";

const Count = Schema.Int;
const Num = Schema.Finite;
const Iso = Schema.String;

/** One output of the run in flight. */
export const OutputStatus = Schema.Struct({
  output_id: Schema.String,
  /** The run (or replay) it belongs to: its Supervisor id. */
  run_id: Schema.NullOr(Schema.String),
  run_key: Schema.String,
  /** Events in the output's view. */
  total: Count,
  /** Handed to the courier by the streamer. */
  emitted: Count,
  /** Answered by the gate: ADMIT, DUPLICATE or QUARANTINE. */
  delivered: Count,
  admitted: Count,
  duplicate: Count,
  quarantined: Count,
  dead_lettered: Count,
  retries: Count,
  /** Emitted, neither delivered nor dead-lettered yet: the lane's queue depth plus in flight. */
  in_lane: Count,
  /** The last acknowledged event's sequence in the view (null before one). */
  position: Schema.NullOr(Count),
  /** Its event time (`ts_utc`). */
  event_time: Schema.NullOr(Schema.String),
  events_per_s: Num,
  /** Pacing lateness (hand-over minus due) in ms, over the run so far. */
  lateness_p50_ms: Num,
  lateness_p99_ms: Num,
}).annotate({ identifier: "OutputStatus" });

/** The `/v1/status` answer. */
export const StatusBody = Schema.Struct({
  status: Schema.Literals(["ready", "degraded", "down"]),
  problems: Schema.Array(Schema.String),
  at: Iso,
  actors: Schema.Array(Schema.Struct({
    actor: Schema.String,
    state: Schema.Literals(["running", "restarting"]),
    restarts: Count,
    last_defect: Schema.NullOr(Schema.String),
    since: Iso,
  })),
  /** The queued run in flight (first, if any) and every replay running beside it. */
  runs_in_flight: Schema.Array(Schema.Struct({
    /** The Supervisor's id: what pause/resume/cancel take (a replay's is its replay id). */
    run_id: Schema.NullOr(Schema.String),
    kind: Schema.Literals(["run", "replay"]),
    state: Schema.String,
    run_key: Schema.NullOr(Schema.String),
    source: Schema.String,
    message_id: Schema.NullOr(Schema.String),
    platform_run_id: Schema.NullOr(Schema.String),
    engine_run_root: Schema.NullOr(Schema.String),
    started_at: Iso,
  })),
  /** Runs waiting behind the one in flight. */
  queued_runs: Count,
  outputs: Schema.Array(OutputStatus),
  wal: Schema.NullOr(Schema.Struct({
    pending_records: Count,
    pending_bytes: Count,
    quota_bytes: Count,
    drain_failures: Count,
    last_drain_error: Schema.NullOr(Schema.String),
  })),
}).annotate({ identifier: "Status" });
export type StatusBody = typeof StatusBody.Type;

/** `GET /v1/status`. */
export const statusRoutes: RouteModule = {
  name: "status",
  routes: [jsonRoute({
    method: "get",
    path: "/v1/status",
    summary: "Actors, runs in flight and per-output progress, rate, lateness, queues, WAL backlog",
    response: StatusBody,
    handle: () => statusNow,
  })],
};

/** The `/v1/status` answer now (the dashboard's event stream sends it every second too). */
export const statusNow: Effect.Effect<StatusBody, never, Supervisor | Health> = Effect.gen(
  function* () {
    const supervisor = yield* Supervisor;
    const readiness = yield* (yield* Health).readiness;
    const progress = yield* supervisor.progress;
    const inFlight = yield* supervisor.inFlight;
    const live = (yield* supervisor.runs).filter((r) => r.state !== "finished");
    const main = live.find((r) => r.kind === "run" && r.state !== "queued");
    const now = yield* Clock.currentTimeMillis;
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      status: readiness.status === "healthy" ? "ready" : readiness.status,
      problems: readiness.problems,
      at: iso(now),
      actors: actorStatesNow().map((a) => ({
        actor: a.actor,
        state: a.state,
        restarts: a.restarts,
        last_defect: a.last_defect,
        since: iso(a.since_ms),
      })),
      runs_in_flight: [
        ...(inFlight === undefined ? [] : [{
          run_id: main?.run_id ?? null,
          kind: "run" as const,
          state: main?.state ?? "running",
          run_key: main?.run_key ??
            progress.find((o) => o.run_id === undefined || o.run_id === main?.run_id)?.run_key ??
            null,
          source: inFlight.request.source,
          message_id: inFlight.request.message_id ?? null,
          platform_run_id: inFlight.request.platform_run_id ?? null,
          engine_run_root: inFlight.request.engine_run_root ?? null,
          started_at: iso(inFlight.started_at_ms),
        }]),
        ...live.filter((r) => r.kind === "replay").map((r) => ({
          run_id: r.run_id,
          kind: "replay" as const,
          state: r.state,
          run_key: r.run_key,
          source: "operator",
          message_id: null,
          platform_run_id: r.platform_run_id,
          engine_run_root: null,
          started_at: r.submitted_at_utc,
        })),
      ],
      queued_runs: yield* supervisor.queued,
      outputs: progress.map((o) => ({
        output_id: o.output_id,
        run_id: o.run_id ?? null,
        run_key: o.run_key,
        total: o.total,
        emitted: o.handed_over,
        delivered: o.emitted,
        admitted: o.admitted,
        duplicate: o.duplicate,
        quarantined: o.quarantined,
        dead_lettered: o.dead_lettered,
        retries: o.retries,
        in_lane: o.in_lane,
        position: o.position?.seq ?? null,
        event_time: o.position?.ts_utc ?? null,
        events_per_s: o.events_per_s,
        lateness_p50_ms: finite(o.lateness.p50_ms),
        lateness_p99_ms: finite(o.lateness.p99_ms),
      })),
      wal: readiness.wal === null ? null : {
        pending_records: readiness.wal.pending_records,
        pending_bytes: readiness.wal.pending_bytes,
        quota_bytes: readiness.wal.quota_bytes,
        drain_failures: readiness.wal.drain_failures,
        last_drain_error: readiness.wal.last_drain_error,
      },
    } satisfies StatusBody;
  },
);

function finite(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

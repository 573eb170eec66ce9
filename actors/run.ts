/**
 * The run step: a checked plan (actors/plan.ts) streamed to its result. Every output streams
 * concurrently, one courier lane and one streamer each, anchored to one shared pacing origin;
 * the run's receipts go to the WAL. Whatever ends the run (a refusal, a failed output, a defect),
 * it ends as a StreamResult.
 */
import { Cause, Clock, Context, Deferred, Effect, Option, Ref, Schedule } from "effect";
import { describeCause } from "../core/supervise.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import type { OutputResult, RunRequested, StreamResult } from "../schemas/messages.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import { openRunBudgets, type RunBudgets } from "./budgets.ts";
import { Checkpointer } from "./checkpointer.ts";
import { type LaneStats, openLane } from "./courier.ts";
import { Journal } from "./journal.ts";
import { Metrics } from "./metrics.ts";
import { type OutputPlan, type PlanNotes, planRun, type RunPlan } from "./plan.ts";
import { RunConfig } from "./run_config.ts";
import { makeRunControl, type RunControl } from "./run_control.ts";
import { deadLetter, runReceipt } from "./run_records.ts";
import { Shutdown } from "./shutdown.ts";
import type { OutputGaps } from "./run_gaps.ts";
import { type Pacing, runGaps, runStreamer } from "./streamer.ts";

/** Live progress of one output of the current run. */
export interface OutputProgress {
  readonly output_id: string;
  /** The run scope (pack key) the output streams under. */
  readonly run_key: string;
  readonly total: number;
  /** Events the gate answered for (ADMIT, DUPLICATE or QUARANTINE). */
  readonly emitted: number;
  /** Events the streamer handed to the courier lane. */
  readonly handed_over: number;
  readonly dead_lettered: number;
  /** Handed over, neither answered nor dead-lettered yet: queued in the lane or in flight. */
  readonly in_lane: number;
  /** The last acknowledged event's position in the view and its event time, null before one. */
  readonly position: { readonly seq: number; readonly ts_utc: string } | null;
  /** Events answered per second over the last few seconds (0 before the second reading). */
  readonly events_per_s: number;
  readonly admitted: number;
  readonly duplicate: number;
  readonly quarantined: number;
  readonly retries: number;
  readonly lateness: { count: number; p50_ms: number; p99_ms: number; max_ms: number };
  /** The Supervisor's id of the run this output belongs to (set by the Supervisor). */
  readonly run_id?: string;
}

/** What the plan step settled: the run's scope and outputs (a replay: its window). */
export interface RunPlanned {
  readonly runKey: string;
  readonly platformRunId: string;
  readonly outputIds: ReadonlyArray<string>;
  /** Per output with a window (a replay): `[from_seq, to_seq)` of its view. */
  readonly windows: ReadonlyArray<{ output_id: string; from_seq: number; to_seq: number }>;
}

/** How the Supervisor steers and follows one run. */
export interface RunHooks {
  /** Pause, resume and cancel (default: a control nobody moves). */
  readonly control?: RunControl;
  /** Completed once the plan is made, or failed with the refusal. */
  readonly planned?: Deferred.Deferred<RunPlanned, WorldstreamError>;
}

/**
 * Test-only fault injection: called with each run's request after its run_start receipt, just
 * before its outputs stream. The default does nothing and no production code replaces it;
 * actors/supervision_test.ts makes one run die of a defect through it, to prove that a bug
 * ends that run (FAILED INTERNAL_ERROR, receipted) and not the service.
 */
export const RunFaultHook = Context.Reference<(request: RunRequested) => Effect.Effect<void>>(
  "worldstream/actors/RunFaultHook",
  { defaultValue: () => () => Effect.void },
);

/** Runs one request to its result (refusals and defects included). */
export function executeRun(
  request: RunRequested,
  live: Ref.Ref<ReadonlyMap<string, Effect.Effect<OutputProgress>>>,
  faultHook: (request: RunRequested) => Effect.Effect<void> = () => Effect.void,
  hooks: RunHooks = {},
) {
  const base = {
    emitted: 0,
    output_ids: [] as string[],
    engine_run_root: request.engine_run_root ?? null,
    scenario_id: request.scenario_id ?? null,
    platform_run_id: request.platform_run_id ?? null,
  };
  const notes: PlanNotes = {
    engine_run_root: base.engine_run_root,
    scenario_id: base.scenario_id,
    output_ids: [],
  };
  const known = () => ({
    ...base,
    engine_run_root: notes.engine_run_root,
    scenario_id: notes.scenario_id,
    output_ids: notes.output_ids,
  });
  return Effect.scoped(Effect.gen(function* () {
    const plan = yield* planRun(request, notes).pipe(
      Effect.tapError((e) => hooks.planned ? Deferred.fail(hooks.planned, e) : Effect.void),
    );
    if (hooks.planned) {
      yield* Deferred.succeed(hooks.planned, {
        runKey: plan.runKey,
        platformRunId: plan.platformRunId,
        outputIds: plan.outputIds,
        windows: plan.outputs.flatMap((o) =>
          o.window
            ? [{ output_id: o.outputId, from_seq: o.window.fromSeq, to_seq: o.window.toSeq }]
            : []
        ),
      });
    }
    const control = hooks.control ?? (yield* makeRunControl());
    return yield* streamPlan(plan, live, faultHook, control);
  })).pipe(
    Effect.catch((e: WorldstreamError) =>
      Effect.succeed<StreamResult>({
        ...known(),
        status: "FAILED",
        reason: e.reason,
        message: e.message,
      })
    ),
    // A bug (an exception where none was expected) ends this run, not the service: FAILED
    // INTERNAL_ERROR with the defect's message, receipted like any other run end.
    Effect.catchDefect((defect) =>
      Effect.gen(function* () {
        const keyed = notes.keyed;
        const message = describeCause(Cause.die(defect));
        const emitted = yield* Ref.get(live).pipe(
          Effect.flatMap((m) => Effect.all([...m.values()])),
          Effect.map((outputs) => outputs.reduce((n, o) => n + o.emitted, 0)),
        );
        yield* Effect.logError("run_defect").pipe(Effect.annotateLogs({
          platform_run_id: base.platform_run_id,
          ...(keyed ? { run_key: keyed.runKey } : {}),
          defect: message,
        }));
        if (keyed) {
          yield* runReceipt(yield* Journal, "run_end", keyed.runKey, keyed.actor, {
            platform_run_id: keyed.platformRunId,
            status: "FAILED",
            emitted,
            reason: "INTERNAL_ERROR",
            message,
          }, "soft_block").pipe(
            Effect.catchCause((cause) =>
              Effect.logError("run_end receipt failed").pipe(
                Effect.annotateLogs({ error: describeCause(cause) }),
              )
            ),
          );
        }
        return internalError(request, Cause.die(defect), { ...known(), emitted });
      })
    ),
  );
}

/**
 * The run step: one pacing origin, a courier lane and a streamer per output, the run's receipts
 * and its result.
 */
function streamPlan(
  plan: RunPlan,
  live: Ref.Ref<ReadonlyMap<string, Effect.Effect<OutputProgress>>>,
  faultHook: (request: RunRequested) => Effect.Effect<void>,
  control: RunControl,
) {
  const { request, runKey: scope, producer, platformRunId, scenarioRunId, world, outputIds } = plan;
  const plans = plan.outputs;
  return Effect.gen(function* () {
    const config = yield* RunConfig;
    const { profile } = config;
    // One pacing origin for the run: the earliest first event of any output, now.
    const firsts = plans.flatMap((p) => p.first ? [p.first.tsMicros[0]] : []);
    const pacing = {
      speedup: request.speedup ?? config.speedupOverride ?? profile.policy.stream_speedup,
      w0Ms: yield* Clock.currentTimeMillis,
      t0Us: firsts.length ? Math.min(...firsts) : 0,
      ...(config.maxGapSeconds === undefined ? {} : { maxGapSeconds: config.maxGapSeconds }),
    };
    // max_gap compresses the run's idle gaps, the same for every output (actors/run_gaps.ts).
    const gaps = runGaps(pacing, plans.length);
    const globalLeft = request.max_events === undefined
      ? undefined
      : yield* Ref.make(request.max_events);
    // The run stops on its own cancel, or when the process stops.
    const { stop: shutdown } = yield* Shutdown;
    const stop = control.stop;
    yield* Effect.forkScoped(
      Deferred.await(shutdown).pipe(Effect.andThen(Deferred.succeed(stop, undefined))),
    );
    yield* control.start;
    const checkpointer = yield* Checkpointer;
    const journal = yield* Journal;
    // governance.budgets: before run_start, so a run whose ledger cannot be read never starts.
    const budgets = yield* openRunBudgets(
      { runKey: scope, platformRunId, principal: producer },
      outputIds,
      stop,
    );
    yield* runReceipt(journal, "run_start", scope, producer, {
      platform_run_id: platformRunId,
      scenario_id: world.worldKey.scenario_id,
      scenario_run_id: scenarioRunId,
      engine_run_root: world.engineRunRoot,
      output_ids: outputIds,
      speedup: pacing.speedup,
      source: request.source,
      ...(request.message_id ? { message_id: request.message_id } : {}),
    });

    yield* faultHook(request);
    yield* Effect.logInfo("stream_start").pipe(Effect.annotateLogs({
      run_key: scope,
      platform_run_id: platformRunId,
      output_ids: outputIds.join(","),
      speedup: pacing.speedup,
      // The pacing anchor, so a gate-side observer can tell when each event was due.
      pacing_w0_ms: pacing.w0Ms,
      pacing_t0_us: pacing.t0Us,
    }));

    // Operators without a terminal (and the bench) follow progress through these log lines.
    yield* Effect.forkScoped(
      Ref.get(live).pipe(
        Effect.flatMap((m) => Effect.all([...m.values()])),
        Effect.flatMap((outputs) =>
          Effect.logInfo("progress").pipe(Effect.annotateLogs({
            run_key: scope,
            emitted: outputs.reduce((n, o) => n + o.emitted, 0),
            rss_mb: Math.round(Deno.memoryUsage().rss / 1048576),
            outputs: outputs.map((o) => `${o.output_id}:${o.emitted}/${o.total}`).join(","),
          }))
        ),
        Effect.repeat(Schedule.spaced("5 seconds")),
        Effect.delay("5 seconds"),
      ),
    );
    const results = yield* Effect.forEach(plans, (output, index) =>
      streamOutput(output, {
        runKey: scope,
        producer,
        request,
        pacing,
        live,
        stop,
        control,
        ...(globalLeft ? { globalLeft } : {}),
        ...(budgets ? { budgets } : {}),
        ...(gaps ? { gaps: gaps.output(index) } : {}),
      }).pipe(
        // An output that ends early (its lane failed to open) must not hold the others' pacing.
        Effect.ensuring(Effect.sync(() => gaps?.output(index).end())),
      ), { concurrency: "unbounded" });

    const elapsed = (yield* Clock.currentTimeMillis) - pacing.w0Ms;
    yield* checkpointer.flush.pipe(
      Effect.catch((e) => Effect.logWarning("checkpoint flush failed", e.message)),
    );
    const emitted = results.reduce((n, r) => n + r.emitted, 0);
    const deadLettered = results.reduce((n, r) => n + r.dead_lettered, 0);
    const failed = results.find((r) => r.status !== "STREAMED");
    // An operator's cancel ends the run CANCELLED, unless an output failed on its own first.
    const cancelled = control.cancelled() && !results.some((r) => r.status === "FAILED");
    // Every event handled, but some only as dead letters (`dead_letter_policy: continue`):
    // not a clean STREAMED, so the result, the READY ledger and the exit code say so.
    const status = cancelled
      ? "CANCELLED"
      : failed
      ? "FAILED"
      : deadLettered > 0
      ? "STREAMED_WITH_DEAD_LETTERS"
      : "STREAMED";
    const reason = cancelled
      ? "RUN_CANCELLED"
      : failed
      ? (failed.reason ?? "STOPPED_BY_OPERATOR")
      : deadLettered > 0
      ? "DEAD_LETTERED"
      : null;
    yield* runReceipt(journal, "run_end", scope, producer, {
      platform_run_id: platformRunId,
      status,
      emitted,
      dead_lettered: deadLettered,
      reason,
      outputs: results.map((r) => ({
        output_id: r.output_id,
        status: r.status,
        emitted: r.emitted,
        dead_lettered: r.dead_lettered,
      })),
    }, status === "STREAMED" ? "pass" : "soft_block");
    const outputsOut = results.map(({ message: _m, ...r }) => r);
    return {
      output_ids: [...outputIds],
      engine_run_root: world.engineRunRoot,
      scenario_id: world.worldKey.scenario_id,
      platform_run_id: platformRunId,
      status,
      emitted,
      dead_lettered: deadLettered,
      reason,
      ...(failed?.message ? { message: failed.message } : {}),
      outputs: outputsOut,
      elapsed_ms: elapsed,
    } satisfies StreamResult as StreamResult;
  });
}

/** What every output of a run shares. */
interface OutputRun {
  readonly runKey: string;
  readonly producer: string;
  readonly request: RunRequested;
  readonly pacing: Pacing;
  readonly live: Ref.Ref<ReadonlyMap<string, Effect.Effect<OutputProgress>>>;
  readonly stop: Shutdown["Service"]["stop"];
  readonly control: RunControl;
  /** Events the whole run may still send (max_events), shared by its outputs. */
  readonly globalLeft?: Ref.Ref<number>;
  readonly gaps?: OutputGaps;
  /** The run's budgets (governance.budgets), when any applies. */
  readonly budgets?: RunBudgets;
}

/** Streams one output through its own courier lane to its result. */
function streamOutput(output: OutputPlan, run: OutputRun) {
  return Effect.gen(function* () {
    const config = yield* RunConfig;
    const checkpointer = yield* Checkpointer;
    const journal = yield* Journal;
    const metrics = (yield* Metrics).output(output.outputId);
    yield* checkpointer.register(run.runKey, output.outputId, output.after, output.owed);
    const seen = { handedOver: 0, position: null as OutputProgress["position"] };
    const rate = new RateMeter();
    const opened = yield* openLane<ViewPosition>(config.courier, output.outputId, {
      metrics,
      onDelivered: (batch, stats) =>
        checkpointer.advance(run.runKey, output.outputId, batch.last, stats).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              seen.position = { seq: batch.last.seq, ts_utc: batch.last.ts_utc };
            })
          ),
        ),
      onDeadLetter: (dead) => deadLetter(journal, run.runKey, output.outputId, run.producer, dead),
      stop: run.stop,
      hold: run.control.hold,
    });
    // Counted at hand-over, so what the lane holds shows in the status.
    const lane = {
      ...opened,
      send: (batch: Parameters<typeof opened.send>[0]) =>
        opened.send(batch).pipe(
          Effect.tap(() => Effect.sync(() => void (seen.handedOver += batch.envelopes.length))),
        ),
    };
    yield* Ref.update(run.live, (m) =>
      new Map(m).set(
        output.outputId,
        Effect.all([lane.stats, Clock.currentTimeMillis]).pipe(
          Effect.map(([s, now]) =>
            progressOf(output.outputId, output.total, s, {
              runKey: run.runKey,
              handedOver: seen.handedOver,
              position: seen.position,
              eventsPerS: rate.add(now, s.emitted + s.deadLettered),
            })
          ),
        ),
      ));
    const budget = run.budgets?.output(output.outputId);
    const streamed = yield* runStreamer({
      outputId: output.outputId,
      source: output.source,
      ...(output.first ? { first: output.first } : {}),
      pacing: run.pacing,
      caps: {
        ...(run.request.max_events_per_output === undefined
          ? {}
          : { perOutput: run.request.max_events_per_output }),
        ...(run.globalLeft ? { global: run.globalLeft } : {}),
      },
      batchSize: config.courier.batchSize,
      lane,
      stop: run.stop,
      metrics,
      control: run.control,
      ...(run.gaps ? { gaps: run.gaps } : {}),
      ...(budget ? { budget } : {}),
    }).pipe(
      Effect.flatMap((outcome) => lane.finish.pipe(Effect.map((stats) => ({ outcome, stats })))),
      Effect.exit,
    );
    const stats = yield* lane.stats;
    const outcome = streamed._tag === "Success" ? streamed.value.outcome : undefined;
    // A hard cap ends the output after exactly the cap: what was handed over is delivered (the
    // lane finished), and the output fails BUDGET_EXCEEDED so the run's result says so.
    const failure = streamed._tag === "Failure"
      ? errorOf(streamed.cause)
      : outcome?.stoppedBy === "budget"
      ? fail("BUDGET_EXCEEDED", outcome.message ?? `${output.outputId}: a budget cap was reached`)
      : undefined;
    const status = failure ? "FAILED" : outcome?.stoppedBy === "shutdown" ? "STOPPED" : "STREAMED";
    yield* Effect.logInfo("stream_complete").pipe(Effect.annotateLogs({
      run_key: run.runKey,
      output_id: output.outputId,
      status,
      emitted: stats.emitted,
      ...(failure ? { reason: failure.reason } : {}),
    }));
    return {
      output_id: output.outputId,
      status,
      emitted: stats.emitted,
      admitted: stats.admitted,
      duplicate: stats.duplicate,
      quarantined: stats.quarantined,
      dead_lettered: stats.deadLettered,
      resumed_from_seq: output.after ? output.after.seq : null,
      reason: failure?.reason ?? null,
      ...(run.pacing.speedup > 0
        ? { lateness: stats.pacing.summary(), send_lag: stats.lateness.summary() }
        : {}),
      ...(failure ? { message: failure.message } : {}),
    } as OutputResult & { message?: string };
  }).pipe(Effect.scoped);
}

/** The FAILED INTERNAL_ERROR result of a run that a defect ended. */
export function internalError(
  request: RunRequested,
  cause: Cause.Cause<unknown>,
  base: Partial<StreamResult> = {},
): StreamResult {
  return {
    emitted: 0,
    output_ids: request.output_ids ? [...request.output_ids] : [],
    engine_run_root: request.engine_run_root ?? null,
    scenario_id: request.scenario_id ?? null,
    platform_run_id: request.platform_run_id ?? null,
    ...base,
    status: "FAILED",
    reason: "INTERNAL_ERROR",
    message: describeCause(cause),
  };
}

function progressOf(
  outputId: string,
  total: number,
  s: LaneStats,
  seen: {
    readonly runKey: string;
    readonly handedOver: number;
    readonly position: OutputProgress["position"];
    readonly eventsPerS: number;
  },
): OutputProgress {
  return {
    output_id: outputId,
    run_key: seen.runKey,
    total,
    emitted: s.emitted,
    handed_over: seen.handedOver,
    dead_lettered: s.deadLettered,
    in_lane: Math.max(0, seen.handedOver - s.emitted - s.deadLettered),
    position: seen.position,
    events_per_s: seen.eventsPerS,
    admitted: s.admitted,
    duplicate: s.duplicate,
    quarantined: s.quarantined,
    retries: s.retries,
    lateness: s.pacing.summary(),
  };
}

/**
 * Events per second over a sliding window of readings (the last ~10 s of them): each progress
 * reading adds one, so the rate is as fresh as the reader's polling.
 */
class RateMeter {
  private readonly samples: Array<readonly [number, number]> = [];

  /** Adds a reading (epoch ms, cumulative count) and answers the rate over the window. */
  add(nowMs: number, count: number): number {
    const s = this.samples;
    if (s.length === 0 || nowMs > s[s.length - 1][0]) s.push([nowMs, count]);
    while (s.length > 2 && nowMs - s[1][0] >= 10_000) s.shift();
    if (s.length < 2) return 0;
    const [t0, c0] = s[0];
    const [t1, c1] = s[s.length - 1];
    return t1 > t0 ? Math.round(((c1 - c0) * 1000) / (t1 - t0) * 10) / 10 : 0;
  }
}

function errorOf(cause: Cause.Cause<unknown>): WorldstreamError {
  const error = Option.getOrUndefined(Cause.findErrorOption(cause));
  return error instanceof WorldstreamError ? error : fail("INTERNAL_ERROR", describeCause(cause));
}

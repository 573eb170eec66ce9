/**
 * Supervisor: the run queue and the register of runs in flight. Runs are handled one at a time
 * from a bounded queue (the backpressure on whoever submits); a replay (one window of one output,
 * in a checkpoint scope of its own) runs beside them at once, so an operator does not wait hours
 * behind the stream in flight. Each is planned and run by actors/run.ts. Every run has an id and
 * a control (pause, resume, cancel: actors/run_control.ts); the last finished ones are kept so a
 * late pause is told the run finished rather than that it is unknown. Whatever ends a run, its
 * caller gets an answer, and the loop is restarted should it ever die.
 */
import { Cause, Clock, Context, Deferred, Effect, Layer, Queue, Random, Ref } from "effect";
import { supervised } from "../core/supervise.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { RunInfo, RunRequested, StreamResult } from "../schemas/messages.ts";
import type { Wal } from "./wal/writer.ts";
import type { DuckDb } from "../stores/duckdb.ts";
import type { IgClient } from "../stores/ig_client.ts";
import type { OracleStore } from "../stores/oracle.ts";
import type { Postgres } from "../stores/postgres.ts";
import type { Checkpointer } from "./checkpointer.ts";
import type { Journal } from "./journal.ts";
import { Metrics } from "./metrics.ts";
import type { RunConfig } from "./run_config.ts";
import { makeRunControl, type RunControl } from "./run_control.ts";
import {
  executeRun,
  internalError,
  type OutputProgress,
  RunFaultHook,
  type RunPlanned,
} from "./run.ts";
import type { Shutdown } from "./shutdown.ts";

export { type OutputProgress, RunFaultHook } from "./run.ts";
export { packKey } from "./plan.ts";

/** The queued run the supervisor is working on (replays run beside it). */
export interface RunInFlight {
  readonly request: RunRequested;
  readonly started_at_ms: number;
}

/** Finished runs kept for `runs` and `run` (older ones are forgotten). */
const FINISHED_KEPT = 64;

/** The run supervisor. */
export class Supervisor extends Context.Service<Supervisor, {
  /** Queues a run and waits for its result (never fails: refusals are FAILED results). */
  readonly submit: (request: RunRequested) => Effect.Effect<StreamResult>;
  /**
   * Starts a run (a replay at once, any other behind the runs before it) and answers once it is
   * planned, with its id; a refusal of the plan step fails with its reason code instead.
   */
  readonly launch: (request: RunRequested) => Effect.Effect<RunInfo, WorldstreamError>;
  /** Waits for a run's result (RUN_UNKNOWN for an id it does not hold). */
  readonly result: (runId: string) => Effect.Effect<StreamResult, WorldstreamError>;
  /** Runs in flight, then the last finished ones, newest first. */
  readonly runs: Effect.Effect<ReadonlyArray<RunInfo>>;
  /** One run (RUN_UNKNOWN). */
  readonly run: (runId: string) => Effect.Effect<RunInfo, WorldstreamError>;
  /** Holds a running run (RUN_UNKNOWN, RUN_FINISHED, RUN_NOT_RUNNING). */
  readonly pause: (runId: string) => Effect.Effect<RunInfo, WorldstreamError>;
  /** Lets a paused run go on, on its schedule (RUN_UNKNOWN, RUN_FINISHED, RUN_NOT_PAUSED). */
  readonly resume: (runId: string) => Effect.Effect<RunInfo, WorldstreamError>;
  /** Cancels a run in flight; it ends CANCELLED (RUN_UNKNOWN, RUN_FINISHED). */
  readonly cancel: (runId: string) => Effect.Effect<RunInfo, WorldstreamError>;
  /** Whether `outputId` streams in a run of checkpoint scope `runKey` now. */
  readonly streaming: (runKey: string, outputId: string) => Effect.Effect<boolean>;
  /** Progress of every output of the runs in flight (empty between runs). */
  readonly progress: Effect.Effect<ReadonlyArray<OutputProgress>>;
  /** The run in flight and when (epoch ms) it started, or `undefined` between runs. */
  readonly inFlight: Effect.Effect<RunInFlight | undefined>;
  /** Runs waiting behind the one in flight. */
  readonly queued: Effect.Effect<number>;
}>()("worldstream/actors/Supervisor") {
  static readonly layer = Layer.effect(
    Supervisor,
    Effect.gen(function* () {
      const faultHook = yield* RunFaultHook;
      const context = yield* Effect.context<
        | RunConfig
        | Checkpointer
        | Journal
        | Shutdown
        | DuckDb
        | OracleStore
        | Postgres
        | Wal
        | IgClient
        | Metrics
      >();
      const scope = yield* Effect.scope;
      const queue = yield* Queue.bounded<Entry, Cause.Done>(16);
      const { runQueue } = (yield* Metrics).gauges;
      yield* (yield* Metrics).collect(Queue.size(queue).pipe(Effect.map((n) => runQueue.set(n))));
      // Runs in flight by id, and the last finished ones (oldest first).
      const inFlight = new Map<string, Entry>();
      const finished: Entry[] = [];

      const progressOf = (e: Entry) =>
        Ref.get(e.live).pipe(
          Effect.flatMap((m) => Effect.all([...m.values()])),
          Effect.map((outputs) => outputs.map((o) => ({ ...o, run_id: e.id }))),
        );
      const infoOf = (e: Entry): Effect.Effect<RunInfo> =>
        Effect.gen(function* () {
          const planned = e.planned;
          return {
            run_id: e.id,
            kind: e.request.replay ? "replay" : "run",
            state: e.result ? "finished" : e.control.state(),
            run_key: planned?.runKey ?? null,
            platform_run_id: planned?.platformRunId ?? e.request.platform_run_id ?? null,
            output_ids: [...(planned?.outputIds ?? e.request.output_ids ?? [])],
            windows: planned?.windows.map((w) => ({ ...w })) ?? [],
            submitted_at_utc: e.submittedAt,
            progress: e.result ? e.lastProgress : yield* progressOf(e),
            status: e.result?.status ?? null,
            reason: e.result?.reason ?? null,
          } satisfies RunInfo;
        });

      // One run to its end. Whatever ends it, its callers get an answer: a defect that got past
      // executeRun's own handling still answers FAILED INTERNAL_ERROR.
      const runEntry = (e: Entry) =>
        Clock.currentTimeMillis.pipe(
          Effect.tap((ms) => Effect.sync(() => e.startedAtMs = ms)),
          Effect.andThen(Deferred.await(e.plannedDeferred)),
          Effect.tap((planned) => Effect.sync(() => e.planned = planned)),
          Effect.ignore,
          Effect.forkIn(scope),
          Effect.andThen(executeRun(e.request, e.live, faultHook, {
            control: e.control,
            planned: e.plannedDeferred,
          })),
          Effect.provideContext(context),
          Effect.onExit((exit) =>
            Effect.gen(function* () {
              e.lastProgress = yield* progressOf(e);
              const result = exit._tag === "Success"
                ? exit.value
                : Cause.hasInterrupts(exit.cause)
                ? undefined
                : internalError(e.request, exit.cause);
              yield* Deferred.fail(
                e.plannedDeferred,
                fail("INTERNAL_ERROR", `Run ${e.id} ended before its plan was made`),
              );
              if (result === undefined) {
                inFlight.delete(e.id);
                return yield* Deferred.interrupt(e.reply);
              }
              e.result = result;
              inFlight.delete(e.id);
              finished.push(e);
              if (finished.length > FINISHED_KEPT) finished.shift();
              yield* Deferred.succeed(e.reply, result);
            })
          ),
          Effect.catchDefect(() => Effect.void),
        );

      yield* Effect.forkScoped(
        supervised(
          "supervisor",
          Effect.forever(Queue.take(queue).pipe(Effect.flatMap(runEntry))).pipe(
            Effect.catchIf(Cause.isDone, () => Effect.void),
          ),
        ),
      );

      const enqueue = (request: RunRequested) =>
        Effect.gen(function* () {
          const id = request.replay?.replay_id ?? (yield* randomId("run"));
          const e: Entry = {
            id,
            request,
            control: yield* makeRunControl(),
            live: yield* Ref.make<ReadonlyMap<string, Effect.Effect<OutputProgress>>>(new Map()),
            reply: yield* Deferred.make<StreamResult>(),
            plannedDeferred: yield* Deferred.make<RunPlanned, WorldstreamError>(),
            submittedAt: new Date(yield* Clock.currentTimeMillis).toISOString(),
            lastProgress: [],
          };
          inFlight.set(id, e);
          if (request.replay) yield* Effect.forkIn(runEntry(e), scope);
          else yield* Queue.offer(queue, e);
          return e;
        });

      const find = (runId: string) =>
        Effect.suspend(() => {
          const e = inFlight.get(runId) ?? finished.find((f) => f.id === runId);
          return e === undefined
            ? Effect.fail(fail("RUN_UNKNOWN", `No run ${JSON.stringify(runId)} is in flight`))
            : Effect.succeed(e);
        });
      const inFlightOnly = (runId: string, what: string) =>
        Effect.flatMap(find(runId), (e) =>
          e.result
            ? Effect.fail(fail(
              "RUN_FINISHED",
              `Run ${runId} already ended ${e.result.status}; it cannot be ${what}`,
            ))
            : Effect.succeed(e));

      return Supervisor.of({
        submit: (request) => Effect.flatMap(enqueue(request), (e) => Deferred.await(e.reply)),
        launch: (request) =>
          Effect.gen(function* () {
            const e = yield* enqueue(request);
            e.planned = yield* Deferred.await(e.plannedDeferred);
            return yield* infoOf(e);
          }),
        result: (runId) => Effect.flatMap(find(runId), (e) => Deferred.await(e.reply)),
        runs: Effect.gen(function* () {
          const all = [...inFlight.values(), ...[...finished].reverse()];
          return yield* Effect.forEach(all, infoOf);
        }),
        run: (runId) => Effect.flatMap(find(runId), infoOf),
        pause: (runId) =>
          Effect.gen(function* () {
            const e = yield* inFlightOnly(runId, "paused");
            if (e.control.state() !== "running") {
              return yield* fail(
                "RUN_NOT_RUNNING",
                `Run ${runId} is ${e.control.state()}, not running; only a running run pauses`,
              );
            }
            yield* e.control.pause;
            yield* Effect.logInfo("run_paused").pipe(Effect.annotateLogs({ run_id: runId }));
            return yield* infoOf(e);
          }),
        resume: (runId) =>
          Effect.gen(function* () {
            const e = yield* inFlightOnly(runId, "resumed");
            if (e.control.state() !== "paused") {
              return yield* fail(
                "RUN_NOT_PAUSED",
                `Run ${runId} is ${e.control.state()}, not paused`,
              );
            }
            yield* e.control.resume;
            yield* Effect.logInfo("run_resumed").pipe(
              Effect.annotateLogs({ run_id: runId, held_ms: e.control.heldMs() }),
            );
            return yield* infoOf(e);
          }),
        cancel: (runId) =>
          Effect.gen(function* () {
            const e = yield* inFlightOnly(runId, "cancelled");
            yield* e.control.cancel;
            yield* Effect.logInfo("run_cancel_requested").pipe(
              Effect.annotateLogs({ run_id: runId }),
            );
            return yield* infoOf(e);
          }),
        streaming: (runKey, outputId) =>
          Effect.sync(() =>
            [...inFlight.values()].some((e) =>
              e.planned !== undefined
                ? e.planned.runKey === runKey && e.planned.outputIds.includes(outputId)
                : false
            )
          ),
        progress: Effect.suspend(() => Effect.forEach([...inFlight.values()], progressOf)).pipe(
          Effect.map((all) => all.flat()),
        ),
        inFlight: Effect.sync(() => {
          const e = [...inFlight.values()].find((e) =>
            !e.request.replay && e.startedAtMs !== undefined && e.result === undefined
          );
          return e === undefined
            ? undefined
            : { request: e.request, started_at_ms: e.startedAtMs! };
        }),
        queued: Queue.size(queue),
      });
    }),
  );
}

interface Entry {
  readonly id: string;
  readonly request: RunRequested;
  readonly control: RunControl;
  readonly live: Ref.Ref<ReadonlyMap<string, Effect.Effect<OutputProgress>>>;
  readonly reply: Deferred.Deferred<StreamResult>;
  readonly plannedDeferred: Deferred.Deferred<RunPlanned, WorldstreamError>;
  readonly submittedAt: string;
  planned?: RunPlanned;
  /** When it began (a run waits in the queue behind the one in flight; a replay starts at once). */
  startedAtMs?: number;
  result?: StreamResult;
  lastProgress: ReadonlyArray<OutputProgress & { run_id: string }>;
}

/** `prefix-` and 16 random hex digits (Effect Random, so tests can fix it). */
export function randomId(prefix: string): Effect.Effect<string> {
  return Effect.gen(function* () {
    const a = yield* Random.nextIntBetween(0, 0xffffffff);
    const b = yield* Random.nextIntBetween(0, 0xffffffff);
    return `${prefix}-${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`;
  });
}

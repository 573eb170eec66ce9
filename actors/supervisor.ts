/**
 * Supervisor: the run queue. Runs are handled one at a time from a bounded queue (the
 * backpressure on whoever submits); each is planned and run by actors/run.ts. Whatever ends a
 * run, its caller gets an answer, and the loop is restarted should it ever die.
 */
import { Cause, Clock, Context, Deferred, Effect, Layer, Queue, Ref } from "effect";
import { supervised } from "../core/supervise.ts";
import type { RunRequested, StreamResult } from "../schemas/messages.ts";
import type { Wal } from "./wal/writer.ts";
import type { DuckDb } from "../stores/duckdb.ts";
import type { IgClient } from "../stores/ig_client.ts";
import type { OracleStore } from "../stores/oracle.ts";
import type { Postgres } from "../stores/postgres.ts";
import type { Checkpointer } from "./checkpointer.ts";
import type { Journal } from "./journal.ts";
import { Metrics } from "./metrics.ts";
import type { RunConfig } from "./run_config.ts";
import { executeRun, internalError, type OutputProgress, RunFaultHook } from "./run.ts";
import type { Shutdown } from "./shutdown.ts";

export { type OutputProgress, RunFaultHook } from "./run.ts";
export { packKey } from "./plan.ts";

/** The run the supervisor is working on. */
export interface RunInFlight {
  readonly request: RunRequested;
  readonly started_at_ms: number;
}

/** The run supervisor. */
export class Supervisor extends Context.Service<Supervisor, {
  /** Queues a run and waits for its result (never fails: refusals are FAILED results). */
  readonly submit: (request: RunRequested) => Effect.Effect<StreamResult>;
  /** Progress of the run in flight (empty between runs). */
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
      const queue = yield* Queue.bounded<
        readonly [RunRequested, Deferred.Deferred<StreamResult>],
        Cause.Done
      >(
        16,
      );
      const { runQueue } = (yield* Metrics).gauges;
      yield* (yield* Metrics).collect(Queue.size(queue).pipe(Effect.map((n) => runQueue.set(n))));
      const live = yield* Ref.make<ReadonlyMap<string, Effect.Effect<OutputProgress>>>(new Map());
      const current = yield* Ref.make<RunInFlight | undefined>(undefined);
      // One run at a time. Whatever ends a run, its caller gets an answer: a defect that got
      // past executeRun's own handling still answers FAILED INTERNAL_ERROR, and the loop itself
      // is restarted should it ever die.
      const serveOne = Effect.gen(function* () {
        const [request, reply] = yield* Queue.take(queue);
        yield* Ref.set(current, { request, started_at_ms: yield* Clock.currentTimeMillis });
        yield* executeRun(request, live, faultHook).pipe(
          Effect.provideContext(context),
          Effect.ensuring(
            Ref.set(live, new Map()).pipe(Effect.andThen(Ref.set(current, undefined))),
          ),
          Effect.onExit((exit) =>
            exit._tag === "Success"
              ? Deferred.succeed(reply, exit.value)
              : Cause.hasInterrupts(exit.cause)
              ? Deferred.interrupt(reply)
              : Deferred.succeed(reply, internalError(request, exit.cause))
          ),
          Effect.catchDefect(() => Effect.void),
        );
      });
      yield* Effect.forkScoped(
        supervised(
          "supervisor",
          Effect.forever(serveOne).pipe(Effect.catchIf(Cause.isDone, () => Effect.void)),
        ),
      );
      return Supervisor.of({
        submit: (request) =>
          Effect.gen(function* () {
            const reply = yield* Deferred.make<StreamResult>();
            yield* Queue.offer(queue, [request, reply] as const);
            return yield* Deferred.await(reply);
          }),
        progress: Ref.get(live).pipe(Effect.flatMap((m) => Effect.all([...m.values()]))),
        inFlight: Ref.get(current),
        queued: Queue.size(queue),
      });
    }),
  );
}

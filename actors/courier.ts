/**
 * Courier: delivers an output's envelopes to the IG in order, with retries, and acknowledges only
 * the contiguous prefix of delivered batches, so a checkpoint never passes an undelivered event.
 *
 * Each output gets a lane: a bounded queue (the backpressure on its streamer) drained by one
 * fiber. Batches waiting in the queue are merged up to `batchSize`, so a slow IG gets fewer,
 * larger requests. By default one request is in flight per lane, which keeps each output in time
 * order at the gate; `maxInFlight > 1` trades that order for throughput and is opt-in. Requests go
 * through the `IgClient` service, which picks the wire mode and retries 408/429/5xx, timeouts and
 * resets by the one retry policy (`core/ig_retry.ts`); any other 4xx is terminal
 * (`IG_PUSH_REJECTED`), and so is running out of attempts (`IG_PUSH_RETRY_EXHAUSTED`).
 */
import { Cause, Clock, Deferred, Effect, Fiber, Queue, Ref, type Scope, Semaphore } from "effect";
import { RETRY_DEFAULTS } from "../core/ig_retry.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { IgClient, type IgClientOptions } from "../stores/ig_client.ts";
import { LatenessStats } from "./lateness.ts";
import type { OutputMetrics } from "./metrics.ts";

/** Envelopes a streamer hands over, in view order, with the position of the last one. */
export interface EmitBatch<P = unknown> {
  readonly envelopes: ReadonlyArray<string>;
  readonly eventIds: ReadonlyArray<string>;
  /** When each envelope was due (epoch ms, Clock time), for pacing lateness; empty when unpaced. */
  readonly dueMs: ReadonlyArray<number>;
  /** Position of the batch's last event (what a checkpoint records). */
  readonly last: P;
}

/** How the courier talks to the IG (the gate's client is built from the same options). */
export interface CourierOptions extends IgClientOptions {
  readonly batchSize: number;
  readonly maxInFlight: number;
  /**
   * Envelopes a lane holds (queued or in flight) before its streamer waits: the backpressure,
   * counted in events so a paced stream's many small hand-overs can absorb a burst while one
   * unpaced stream's full batches still bound memory.
   */
  readonly bufferEvents: number;
  /**
   * What a terminal failure does after its envelopes are dead-lettered: `stop` the output (the
   * platform's behaviour; its checkpoint stays before them) or `continue` past up to
   * `maxDeadLetters` dead letters per lane (their batch then counts as handled).
   */
  readonly deadLetterPolicy: "stop" | "continue";
  readonly maxDeadLetters: number;
}

/** Defaults matching the platform's WSP retry settings. */
export const COURIER_DEFAULTS: Omit<CourierOptions, "endpoint"> = {
  ...RETRY_DEFAULTS,
  mode: "auto",
  batchSize: 500,
  pushConcurrency: 1,
  maxInFlight: 1,
  bufferEvents: 8192,
  deadLetterPolicy: "stop",
  maxDeadLetters: 0,
};

/** Per-lane counters. */
export interface LaneStats {
  readonly emitted: number;
  readonly admitted: number;
  readonly duplicate: number;
  readonly quarantined: number;
  readonly requests: number;
  readonly retries: number;
  readonly deadLettered: number;
  /** Send lag: request start minus due time (includes waiting for the IG's previous answer). */
  readonly lateness: LatenessStats;
  /** Pacing lateness: hand-over by the streamer minus due time (what the pacer controls). */
  readonly pacing: LatenessStats;
}

/** Envelopes the gate would not take, handed to the lane's owner to be stored whole. */
export interface DeadLetterBatch<P> {
  readonly batch: EmitBatch<P>;
  readonly reason: string;
  readonly message: string;
  readonly attempts: number;
  /** The last HTTP status (0 when there was no answer). */
  readonly lastStatus: number;
}

/** What a lane tells its owner. */
export interface LaneHooks<P> {
  /**
   * Called in order with each acknowledged batch (delivered, or dead-lettered and passed); the
   * lane dispatches at most (maxInFlight + 1) × batchSize events ahead of the last call that
   * returned.
   */
  readonly onDelivered: (batch: EmitBatch<P>, stats: LaneStats) => Effect.Effect<void>;
  /** Stores dead letters durably; called before the lane stops or moves past them. */
  readonly onDeadLetter?: (dead: DeadLetterBatch<P>) => Effect.Effect<void, WorldstreamError>;
  /**
   * A stop request (SIGINT/SIGTERM). Once it is done the lane takes no new batch and dispatches
   * nothing more: requests already out are answered and acknowledged, batches still queued are
   * dropped. They were never acknowledged, so the checkpoint stays before them and the next start
   * reads them again; without this a lane behind schedule would push its whole buffer (thousands
   * of requests in push mode) before the process could exit.
   */
  readonly stop?: Deferred.Deferred<void>;
  /** The output's Prometheus instruments (actors/metrics.ts), updated as the lane works. */
  readonly metrics?: OutputMetrics;
  /**
   * The run's pause (actors/run_control.ts): waits while the run is paused, so a paused lane
   * dispatches nothing more, not even batches it already holds; default: never holds.
   */
  readonly hold?: Effect.Effect<void>;
}

/** A terminal delivery failure, with what the dead letter records. */
class DeliveryFailed {
  constructor(
    readonly error: WorldstreamError,
    readonly attempts: number,
    readonly lastStatus: number,
  ) {}
}

/** One output's ordered delivery lane. */
export interface Lane<P> {
  /** Queues a batch; waits while the queue is full; fails once the lane has failed. */
  readonly send: (batch: EmitBatch<P>) => Effect.Effect<void, WorldstreamError>;
  /** Ends input, waits until every queued batch is delivered and acknowledged. */
  readonly finish: Effect.Effect<LaneStats, WorldstreamError>;
  /** Live counters (for status displays). */
  readonly stats: Effect.Effect<LaneStats>;
}

/**
 * Opens a lane to the gate of the `IgClient` service; `onDelivered` is called in order with each
 * acknowledged batch.
 */
export const openLane = Effect.fn("openLane")(function* <P>(
  options: CourierOptions,
  outputId: string,
  hooks: LaneHooks<P> | ((batch: EmitBatch<P>, stats: LaneStats) => Effect.Effect<void>),
): Effect.fn.Return<Lane<P>, never, Scope.Scope | IgClient> {
  const client = yield* IgClient;
  const { onDelivered, onDeadLetter, stop, metrics, hold } = typeof hooks === "function"
    ? {
      onDelivered: hooks,
      onDeadLetter: undefined,
      stop: undefined,
      metrics: undefined,
      hold: undefined,
    }
    : hooks;
  if (metrics !== undefined) {
    // Whatever the lane still held when it closed is no longer queued anywhere.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        metrics.queued.set(0);
        metrics.lastDueMs = NaN;
        metrics.waiting = false;
      })
    );
  }
  const onAnswer = metrics === undefined
    ? undefined
    : (seconds: number) => metrics.requestSeconds.observe(seconds);
  const stopped = stop === undefined ? Effect.succeed(false) : Deferred.isDone(stop);
  const queue = yield* Queue.unbounded<EmitBatch<P>, Cause.Done>();
  // Held from hand-over until the batch is acknowledged (or the lane ends).
  const capacity = Math.max(options.bufferEvents, options.batchSize);
  const buffer = yield* Semaphore.make(capacity);
  const pending = yield* Queue.unbounded<
    Deferred.Deferred<EmitBatch<P>, WorldstreamError>,
    Cause.Done
  >();
  const failed = yield* Deferred.make<never, WorldstreamError>();
  const lateness = new LatenessStats();
  const pacing = new LatenessStats();
  const counters = yield* Ref.make({
    emitted: 0,
    admitted: 0,
    duplicate: 0,
    quarantined: 0,
    requests: 0,
    retries: 0,
    deadLettered: 0,
  });
  const snapshot = Ref.get(counters).pipe(Effect.map((c) => ({ ...c, lateness, pacing })));
  const semaphore = yield* Semaphore.make(options.maxInFlight);
  // The ack window, in events: a batch is dispatched only while the events dispatched and not
  // yet acknowledged, its own included, are at most (maxInFlight + 1) × batchSize, and
  // `onDelivered` (the checkpoint) returns once its position is durable. So what the gate holds
  // beyond the durable checkpoint, the most a SIGKILL makes a restart re-send, is at most
  // (maxInFlight + 1) × batchSize events: full batches in flight plus one whose checkpoint is in
  // the WAL's group commit. Counted in events, not batches, a paced lane's small batches do not
  // wait on a slow fsync: they stall only once that many events await durability.
  const windowEvents = (options.maxInFlight + 1) * options.batchSize;
  const window = yield* Semaphore.make(windowEvents);

  const deliverOne = (batch: EmitBatch<P>) =>
    attempt(batch).pipe(
      Effect.catch((failure: DeliveryFailed) =>
        Effect.gen(function* () {
          const { error } = failure;
          if (onDeadLetter === undefined) return yield* error;
          yield* onDeadLetter({
            batch,
            reason: error.reason,
            message: error.message,
            attempts: failure.attempts,
            lastStatus: failure.lastStatus,
          });
          const c = yield* Ref.updateAndGet(
            counters,
            (c) => ({ ...c, deadLettered: c.deadLettered + batch.envelopes.length }),
          );
          metrics?.deadLettered.inc(batch.envelopes.length);
          yield* Effect.logWarning("envelopes dead-lettered").pipe(Effect.annotateLogs({
            output_id: outputId,
            reason: error.reason,
            count: batch.envelopes.length,
            dead_lettered: c.deadLettered,
          }));
          // A gate answering what worldstream cannot read may have taken them or not: the
          // output stops before them whatever the policy, so a rerun sends them again.
          if (
            options.deadLetterPolicy === "continue" && c.deadLettered <= options.maxDeadLetters &&
            error.reason !== "IG_ANSWER_UNEXPECTED"
          ) {
            return batch;
          }
          return yield* error;
        })
      ),
    );

  const onRequest = (attempt: number) =>
    Ref.update(counters, (c) => {
      if (attempt > 1) metrics?.retries.inc();
      return { ...c, requests: c.requests + 1, retries: c.retries + (attempt > 1 ? 1 : 0) };
    });

  const attempt = (batch: EmitBatch<P>) =>
    Effect.gen(function* () {
      const sentAt = yield* Clock.currentTimeMillis;
      for (const due of batch.dueMs) lateness.add(sentAt - due);
      const { decisions } = yield* client.send(batch.envelopes, onRequest, onAnswer).pipe(
        Effect.annotateLogs({ output_id: outputId }),
        Effect.mapError((e) =>
          new DeliveryFailed(
            fail(e.reason, `${outputId}: ${e.message} for events ${batch.eventIds[e.index]}…`),
            e.requests,
            e.answer.status,
          )
        ),
      );
      // One pass over the decisions, no arrays made: this runs for every batch.
      let admitted = 0;
      let duplicate = 0;
      let quarantined = 0;
      for (const d of decisions) {
        if (d === "ADMIT") admitted++;
        else if (d === "DUPLICATE") duplicate++;
        else if (d === "QUARANTINE") quarantined++;
      }
      yield* Ref.update(counters, (c) => ({
        ...c,
        emitted: c.emitted + decisions.length,
        admitted: c.admitted + admitted,
        duplicate: c.duplicate + duplicate,
        quarantined: c.quarantined + quarantined,
      }));
      if (metrics !== undefined) {
        metrics.delivered.inc(decisions.length);
        metrics.admitted.inc(admitted);
        metrics.duplicate.inc(duplicate);
        metrics.quarantined.inc(quarantined);
      }
      return batch;
    });

  // Set by a failed delivery: nothing after an undelivered batch may reach the gate, even before
  // the acknowledger gets to the failure and the owner closes the lane.
  let halted = false;

  // Dispatcher: takes (merged) batches in order and starts their delivery, at most maxInFlight.
  const dispatcher = Effect.gen(function* () {
    dispatch: while (true) {
      const taken = yield* Queue.takeBetween(queue, 1, 4096).pipe(
        Effect.catchIf(Cause.isDone, () => Effect.succeed(undefined)),
      );
      if (taken === undefined || taken.length === 0) break;
      for (const batch of merge(taken, options.batchSize)) {
        if (hold !== undefined) yield* hold;
        const events = Math.min(batch.envelopes.length, windowEvents);
        yield* Semaphore.take(window, events);
        yield* Semaphore.take(semaphore, 1);
        if (halted || (yield* stopped)) {
          yield* Semaphore.release(semaphore, 1);
          yield* Semaphore.release(window, events);
          break dispatch;
        }
        const done = yield* Deferred.make<EmitBatch<P>, WorldstreamError>();
        yield* Queue.offer(pending, done);
        yield* Effect.forkChild(
          deliverOne(batch).pipe(
            Effect.exit,
            Effect.tap((exit) => Effect.sync(() => void (halted ||= exit._tag === "Failure"))),
            Effect.flatMap((exit) => Deferred.done(done, exit)),
            Effect.ensuring(Semaphore.release(semaphore, 1)),
          ),
        );
      }
    }
    // Deliveries are this fiber's children: wait for all of them before it (and they) end.
    yield* Semaphore.take(semaphore, options.maxInFlight);
    yield* Queue.end(pending);
  });

  // Acknowledger: completes batches strictly in order; the first failure fails the lane.
  const acknowledger = Effect.gen(function* () {
    while (true) {
      const next = yield* Queue.take(pending).pipe(
        Effect.catchIf(Cause.isDone, () => Effect.succeed(undefined)),
      );
      if (next === undefined) break;
      const batch = yield* Deferred.await(next);
      yield* onDelivered(batch, yield* snapshot);
      yield* Semaphore.release(window, Math.min(batch.envelopes.length, windowEvents));
      yield* Semaphore.release(buffer, batch.envelopes.length);
      metrics?.queued.dec(batch.envelopes.length);
    }
  }).pipe(Effect.tapError((e) => Deferred.fail(failed, e)));

  const dispatchFiber = yield* Effect.forkScoped(dispatcher);
  const ackFiber = yield* Effect.forkScoped(acknowledger.pipe(Effect.exit));

  const handedOver = metrics === undefined ? (_n: number) => {} : (n: number) => {
    metrics.emitted.inc(n);
    metrics.queued.inc(n);
  };

  const failure = Deferred.isDone(failed).pipe(
    Effect.flatMap((isDone) => isDone ? Deferred.await(failed) : Effect.void),
  );
  return {
    send: (batch) =>
      Effect.gen(function* () {
        yield* failure;
        if (yield* stopped) return;
        const permits = Math.min(batch.envelopes.length, capacity);
        // The common case, room in the buffer, needs no race: a paced stream hands over
        // thousands of small groups a second and each race forks two fibers.
        if (yield* Semaphore.takeIfAvailable(buffer, permits)) {
          yield* Queue.offer(queue, batch);
          handedOver(batch.envelopes.length);
          return;
        }
        yield* Effect.raceFirst(
          Semaphore.take(buffer, permits).pipe(
            Effect.andThen(Queue.offer(queue, batch)),
            Effect.andThen(Effect.sync(() => handedOver(batch.envelopes.length))),
          ),
          stop === undefined ? Deferred.await(failed) : Effect.raceFirst(
            Deferred.await(failed),
            Deferred.await(stop),
          ),
        );
      }),
    finish: Effect.gen(function* () {
      yield* Queue.end(queue);
      const ackExit = yield* Effect.raceFirst(
        Fiber.join(ackFiber),
        Deferred.await(failed).pipe(Effect.exit),
      );
      yield* Fiber.interrupt(dispatchFiber);
      if (ackExit._tag === "Failure") return yield* Effect.failCause(ackExit.cause);
      return yield* snapshot;
    }),
    stats: snapshot,
  };
});

function merge<P>(batches: ReadonlyArray<EmitBatch<P>>, max: number): Array<EmitBatch<P>> {
  const out: Array<EmitBatch<P>> = [];
  let cur: { envelopes: string[]; eventIds: string[]; dueMs: number[]; last: P } | undefined;
  for (const b of batches) {
    if (cur !== undefined && cur.envelopes.length + b.envelopes.length <= max) {
      cur.envelopes.push(...b.envelopes);
      cur.eventIds.push(...b.eventIds);
      cur.dueMs.push(...b.dueMs);
      cur.last = b.last;
    } else {
      if (cur !== undefined) out.push(cur);
      cur = {
        envelopes: [...b.envelopes],
        eventIds: [...b.eventIds],
        dueMs: [...b.dueMs],
        last: b.last,
      };
    }
  }
  if (cur !== undefined) out.push(cur);
  return out;
}

/**
 * Streamer: one per output. Reads envelopes from the output's stream view after its checkpoint,
 * paces them and hands them to the output's courier lane in order.
 *
 * Pacing is anchored, never per-gap sleeping, so errors do not accumulate: with run start wall
 * time W0 and first event time T0 (shared by all outputs of a run so they stay aligned), event i
 * is due at W0 + (ts_i − T0) / speedup. speedup 0 means as fast as possible. `maxGapSeconds`
 * compresses idle gaps longer than that (wall seconds): gaps of the run, where no output has an
 * event, shared through {@link RunGaps} so the outputs stay aligned. Time comes from Effect
 * Clock, so tests run on TestClock.
 */
import { Clock, Deferred, Effect, Ref } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import type { OutputBudget } from "./budgets.ts";
import type { EmitBatch, Lane } from "./courier.ts";
import type { OutputMetrics } from "./metrics.ts";
import type { RunControl } from "./run_control.ts";
import { type OutputGaps, RunGaps } from "./run_gaps.ts";

/** Waits up to this long are not interruptible by a stop request (it is seen right after). */
const SHORT_WAIT_MS = 50;

/** One chunk of envelopes from a view, in view order. */
export interface EnvelopeChunk {
  readonly envelopes: ReadonlyArray<string>;
  readonly eventIds: ReadonlyArray<string>;
  /** Event time of each envelope, epoch microseconds. */
  readonly tsMicros: ReadonlyArray<number>;
  readonly positionAt: (i: number) => ViewPosition;
}

/** A pull cursor of chunks; `undefined` at the end of the view. */
export interface EnvelopeSource {
  readonly next: Effect.Effect<EnvelopeChunk | undefined, WorldstreamError>;
}

/** The run-wide pacing anchor. */
export interface Pacing {
  /** 0 = unpaced. */
  readonly speedup: number;
  /** Run start, epoch ms (Clock). */
  readonly w0Ms: number;
  /** Earliest first event time across the run's outputs, epoch µs. */
  readonly t0Us: number;
  readonly maxGapSeconds?: number;
}

/** max_gap in event time (µs), or Infinity when gaps are not compressed. */
export function maxGapMicros(pacing: Pacing): number {
  return pacing.speedup > 0 && pacing.maxGapSeconds !== undefined
    ? pacing.maxGapSeconds * 1e6 * pacing.speedup
    : Infinity;
}

/** The run's shared gaps for `outputs` outputs paced by `pacing` (none without max_gap). */
export function runGaps(pacing: Pacing, outputs: number): RunGaps | undefined {
  const maxGapUs = maxGapMicros(pacing);
  return maxGapUs === Infinity ? undefined : new RunGaps(outputs, pacing.t0Us, maxGapUs);
}

/** Caps on what is sent. `global` is shared by all outputs of the run: events still allowed. */
export interface Caps {
  readonly perOutput?: number;
  readonly global?: Ref.Ref<number>;
}

/** How a streamer ended. */
export interface StreamerOutcome {
  readonly outputId: string;
  readonly read: number;
  readonly handedOver: number;
  /** `budget`: a hard cap of governance.budgets was reached (BUDGET_EXCEEDED). */
  readonly stoppedBy: "end" | "cap" | "budget" | "shutdown";
  /** With `budget`: which cap, in one line. */
  readonly message?: string;
}

/** Streams one output until its view ends, a cap is reached or a stop is requested. */
export const runStreamer = Effect.fn("runStreamer")(
  function* (options: {
    readonly outputId: string;
    readonly source: EnvelopeSource;
    /** A chunk already read (the supervisor peeks first chunks to find T0). */
    readonly first?: EnvelopeChunk;
    readonly pacing: Pacing;
    readonly caps: Caps;
    readonly batchSize: number;
    readonly lane: Lane<ViewPosition>;
    readonly stop: Deferred.Deferred<void>;
    /**
     * This output's side of the run's gaps (see {@link runGaps}), needed with max_gap when the
     * run has several outputs; without it the output is paced as if it were alone.
     */
    readonly gaps?: OutputGaps;
    /**
     * This output's budgets (actors/budgets.ts): asked before every hand-over, it paces (rates)
     * and cuts the hand-over at a hard cap, after which the output ends `budget`.
     */
    readonly budget?: OutputBudget;
    /** The output's Prometheus instruments: pacing lateness and the schedule position. */
    readonly metrics?: OutputMetrics;
    /**
     * The run's pause switch: while paused nothing more is handed over, and the schedule moves by
     * the time paused (see actors/run_control.ts). The stop request is `stop`.
     */
    readonly control?: Pick<RunControl, "paused" | "hold" | "heldMs">;
  }): Effect.fn.Return<StreamerOutcome, WorldstreamError> {
    const { pacing, caps, lane, batchSize, control } = options;
    const heldMs = control ? control.heldMs : () => 0;
    const paced = pacing.speedup > 0;
    const maxGapUs = maxGapMicros(pacing);
    const gaps = options.gaps ?? runGaps(pacing, 1)?.output(0);
    let shiftUs = 0;
    let prevTs = pacing.t0Us;
    let read = 0;
    let handedOver = 0;
    let perOutputLeft = caps.perOutput ?? Infinity;
    let group = emptyGroup();
    // Set when the budget ended the output during a flush: what the flush returns says "stop".
    let budgetEnd: { readonly end: "budget" | "shutdown"; readonly message?: string } | undefined;
    // The lane's lateness histogram is one object for the lane's life: fetched once, not per flush.
    const pacingStats = (yield* lane.stats).pacing;
    const metrics = options.metrics;

    /** Hands the group to the lane; false when the run-wide cap cut it (streaming must end). */
    const flush = Effect.gen(function* () {
      const size = group.envelopes.length;
      if (size === 0) return true;
      const n = caps.global === undefined ? size : yield* Ref.modify(caps.global, (left) => {
        const granted = Math.min(left, size);
        return [granted, left - granted];
      });
      const handed = group;
      group = emptyGroup();
      let from = 0;
      while (from < n) {
        let k = n - from;
        if (options.budget !== undefined) {
          const admitted = yield* options.budget.admit(handed.envelopes, handed.positions, from, k);
          k = admitted.granted;
          if (admitted.end !== undefined) {
            budgetEnd = {
              end: admitted.end,
              ...(admitted.message === undefined ? {} : { message: admitted.message }),
            };
          }
        }
        if (k > 0) {
          const batch = from === 0 && k === size ? toBatch(handed) : toBatch(handed, from, k);
          if (batch.dueMs.length > 0) {
            const at = yield* Clock.currentTimeMillis;
            for (const due of batch.dueMs) pacingStats.add(at - due);
            if (metrics !== undefined) {
              const hist = metrics.pacingLateness;
              for (const due of batch.dueMs) hist.observe(at > due ? (at - due) / 1000 : 0);
            }
          }
          yield* lane.send(batch);
          handedOver += k;
          from += k;
          if (metrics !== undefined && batch.dueMs.length > 0) {
            metrics.lastDueMs = batch.dueMs[batch.dueMs.length - 1];
          }
        }
        if (budgetEnd !== undefined) return false;
      }
      return n === size;
    });
    const outcome = (stoppedBy: StreamerOutcome["stoppedBy"]) =>
      (budgetEnd === undefined ? { outputId: options.outputId, read, handedOver, stoppedBy } : {
        outputId: options.outputId,
        read,
        handedOver,
        stoppedBy: budgetEnd.end,
        ...(budgetEnd.message === undefined ? {} : { message: budgetEnd.message }),
      }) satisfies StreamerOutcome;

    let chunk = options.first ?? (yield* options.source.next);
    if (chunk !== undefined) gaps?.read(chunk.tsMicros);
    let now = yield* Clock.currentTimeMillis;
    while (chunk !== undefined) {
      for (let i = 0; i < chunk.envelopes.length; i++) {
        if (perOutputLeft <= 0) {
          yield* flush;
          return outcome("cap");
        }
        if (control !== undefined && control.paused()) {
          // Hand over what was due before the pause, then hold until resumed (or stopped).
          if (!(yield* flush)) return outcome("cap");
          yield* control.hold;
          if (yield* Deferred.isDone(options.stop)) return outcome("shutdown");
          now = yield* Clock.currentTimeMillis;
        }
        let dueMs = 0;
        if (paced) {
          const ts = chunk.tsMicros[i];
          // Only past a long gap of its own can the run's shift have grown (see run_gaps.ts).
          // Finding out may wait for other outputs to read on: hand over what is due first.
          if (ts - prevTs > maxGapUs) {
            if (!(yield* flush)) return outcome("cap");
            shiftUs += yield* gaps!.compression(prevTs, ts);
            now = yield* Clock.currentTimeMillis;
          }
          prevTs = ts;
          const scheduledMs = pacing.w0Ms + (ts - pacing.t0Us - shiftUs) / 1000 / pacing.speedup;
          dueMs = scheduledMs + heldMs();
          if (dueMs > now + 0.5) {
            // Not due yet: hand over what is due, then wait for this one (or a stop request).
            if (!(yield* flush)) return outcome("cap");
            now = yield* Clock.currentTimeMillis;
            // A pause while waiting holds here and moves this event's due time by its length.
            let waiting = dueMs > now;
            while (waiting) {
              if (metrics !== undefined) metrics.waiting = true;
              // A short wait is slept out and the stop request checked after it; only a long one
              // races the stop request (a race forks two fibers, thousands of times a second when
              // the events are dense).
              const stopped = dueMs - now <= SHORT_WAIT_MS
                ? yield* Effect.sleep(`${dueMs - now} millis`).pipe(
                  Effect.andThen(Deferred.isDone(options.stop)),
                )
                : yield* Effect.raceFirst(
                  Effect.sleep(`${dueMs - now} millis`).pipe(Effect.as(false)),
                  Deferred.await(options.stop).pipe(Effect.as(true)),
                );
              if (metrics !== undefined) metrics.waiting = false;
              if (stopped) return outcome("shutdown");
              waiting = false;
              if (control !== undefined && control.paused()) {
                yield* control.hold;
                if (yield* Deferred.isDone(options.stop)) return outcome("shutdown");
                dueMs = scheduledMs + heldMs();
                waiting = dueMs > (yield* Clock.currentTimeMillis) + 0.5;
              }
              now = yield* Clock.currentTimeMillis;
            }
          }
        }
        group.envelopes.push(chunk.envelopes[i]);
        group.eventIds.push(chunk.eventIds[i]);
        group.positions.push(chunk.positionAt(i));
        if (paced) group.dueMs.push(dueMs);
        read++;
        perOutputLeft--;
        if (group.envelopes.length >= batchSize) {
          if (!(yield* flush)) return outcome("cap");
          now = yield* Clock.currentTimeMillis;
        }
      }
      // What is in the group is due (or unpaced): hand it over before reading the next chunk.
      if (!(yield* flush)) return outcome("cap");
      if (yield* Deferred.isDone(options.stop)) {
        yield* flush;
        return outcome("shutdown");
      }
      chunk = yield* options.source.next;
      if (chunk !== undefined) gaps?.read(chunk.tsMicros);
      now = yield* Clock.currentTimeMillis;
    }
    yield* flush;
    return outcome("end");
    // However it ends, the other outputs must not wait on this one's reading again.
  },
  (effect, options) =>
    options.gaps ? Effect.ensuring(effect, Effect.sync(options.gaps.end)) : effect,
);

interface Group {
  envelopes: string[];
  eventIds: string[];
  dueMs: number[];
  positions: ViewPosition[];
}

function emptyGroup(): Group {
  return { envelopes: [], eventIds: [], dueMs: [], positions: [] };
}

/** The `n` events of the group from `from` (all of it by default) as a batch. */
function toBatch(
  group: Group,
  from = 0,
  n = group.envelopes.length - from,
): EmitBatch<ViewPosition> {
  const cut = from > 0 || n < group.envelopes.length;
  return {
    envelopes: cut ? group.envelopes.slice(from, from + n) : group.envelopes,
    eventIds: cut ? group.eventIds.slice(from, from + n) : group.eventIds,
    dueMs: cut ? group.dueMs.slice(from, from + n) : group.dueMs,
    last: group.positions[from + n - 1],
  };
}

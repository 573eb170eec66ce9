/**
 * The steering wheel of one run in flight: pause, resume and cancel, shared by the run's
 * streamers. A pause holds every streamer before its next event and moves the run's pacing
 * schedule by however long it lasted, so on resume the schedule continues where it stood instead
 * of sending in a burst what fell due meanwhile. A cancel is a stop of this run alone: the
 * streamers hand over nothing more, the lanes deliver what is already out and the run ends
 * CANCELLED with its checkpoints flushed (actors/run.ts).
 */
import { Clock, Deferred, Effect } from "effect";

/** Where a run in flight stands. */
export type RunState = "queued" | "running" | "paused" | "cancelling";

/** One run's control, read by its streamers and moved by the Supervisor. */
export interface RunControl {
  readonly state: () => RunState;
  /** Done once the run must stop: cancelled, or the process is stopping. */
  readonly stop: Deferred.Deferred<void>;
  readonly cancelled: () => boolean;
  readonly paused: () => boolean;
  /** Milliseconds the run has spent paused so far (the pacing schedule's shift). */
  readonly heldMs: () => number;
  /** Waits while the run is paused; returns at once when it is not (or once it must stop). */
  readonly hold: Effect.Effect<void>;
  readonly start: Effect.Effect<void>;
  readonly pause: Effect.Effect<void>;
  readonly resume: Effect.Effect<void>;
  readonly cancel: Effect.Effect<void>;
}

/** A control for a run not started yet (state `queued`). */
export function makeRunControl(): Effect.Effect<RunControl> {
  return Effect.gen(function* () {
    const stop = yield* Deferred.make<void>();
    let state: RunState = "queued";
    let held = 0;
    let pausedAt = 0;
    let resumed = Deferred.makeUnsafe<void>();
    return {
      state: () => state,
      stop,
      cancelled: () => state === "cancelling",
      paused: () => state === "paused",
      heldMs: () => held,
      hold: Effect.suspend(() =>
        state === "paused"
          ? Effect.raceFirst(Deferred.await(resumed), Deferred.await(stop))
          : Effect.void
      ),
      start: Effect.sync(() => {
        if (state === "queued") state = "running";
      }),
      pause: Effect.gen(function* () {
        if (state !== "running") return;
        pausedAt = yield* Clock.currentTimeMillis;
        resumed = Deferred.makeUnsafe<void>();
        state = "paused";
      }),
      resume: Effect.gen(function* () {
        if (state !== "paused") return;
        held += (yield* Clock.currentTimeMillis) - pausedAt;
        state = "running";
        yield* Deferred.succeed(resumed, undefined);
      }),
      cancel: Effect.gen(function* () {
        const was = state;
        state = "cancelling";
        if (was === "paused") yield* Deferred.succeed(resumed, undefined);
        yield* Deferred.succeed(stop, undefined);
      }),
    } satisfies RunControl;
  });
}

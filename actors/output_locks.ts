/**
 * One lock per (checkpoint scope, output): a run holds its outputs' locks from before it reads
 * their checkpoints until it ends, and a checkpoint reset takes the lock only if it is free, for
 * as long as it reads and moves the checkpoint. So a reset never lands between a run's reading of
 * a checkpoint and its end (the run would resume from the old position and save over the reset),
 * and a run that starts while a reset is being written waits the few milliseconds it takes.
 *
 * The runtime provides one set of locks (actors/runtime.ts); by default, outside a runtime, every
 * lock is free: a command without a runtime has no run in its process to race with.
 */
import { Context, Effect, Option, type Scope, Semaphore } from "effect";

/** The locks of one runtime. */
export interface OutputLocksShape {
  /** Holds the lock of `scope`/`outputId` until the current scope closes (waiting while taken). */
  readonly hold: (scope: string, outputId: string) => Effect.Effect<void, never, Scope.Scope>;
  /** Runs `body` holding the lock, or answers Option.none() without running it when it is taken. */
  readonly ifFree: <A, E, R>(
    scope: string,
    outputId: string,
    body: Effect.Effect<A, E, R>,
  ) => Effect.Effect<Option.Option<A>, E, R>;
}

const free: OutputLocksShape = {
  hold: () => Effect.void,
  ifFree: (_scope, _outputId, body) => Effect.map(body, Option.some),
};

/** The runtime's output locks; by default ones that are always free. */
export const OutputLocks = Context.Reference<OutputLocksShape>("worldstream/actors/OutputLocks", {
  defaultValue: () => free,
});

/** A set of locks (one per runtime). */
export function makeOutputLocks(): OutputLocksShape {
  const locks = new Map<string, Semaphore.Semaphore>();
  const lockOf = (scope: string, outputId: string) => {
    const key = `${scope}\u0000${outputId}`;
    let lock = locks.get(key);
    if (lock === undefined) {
      lock = Semaphore.makeUnsafe(1);
      locks.set(key, lock);
    }
    return lock;
  };
  return {
    hold: (scope, outputId) => Semaphore.takeScoped(lockOf(scope, outputId), 1).pipe(Effect.asVoid),
    ifFree: (scope, outputId, body) =>
      Semaphore.withPermitsIfAvailable(lockOf(scope, outputId), 1)(body),
  };
}

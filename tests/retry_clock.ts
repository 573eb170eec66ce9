/**
 * Retry tests on Effect's TestClock: the effect under test talks to a real gate over HTTP while
 * its retry waits sleep on a TestClock that moves only when told — by exactly the wait the retry
 * policy chose and logged ("IG push failed; retrying", `delay_ms`). No wall-clock sleep decides
 * anything; live time only bounds how long we poll for the next log line.
 */
import { Effect, Exit, Fiber, Logger } from "effect";
import { TestClock } from "effect/testing";

/** What an effect run on the retry clock did. */
export interface RetryClockRun<A, E> {
  readonly exit: Exit.Exit<A, E>;
  /** Each wait the retry policy chose, in order (ms). */
  readonly waits: ReadonlyArray<number>;
  /** The TestClock's time at the end: the sum of the waits when nothing else slept. */
  readonly elapsedMs: number;
  /** Every log line, as JSON. */
  readonly logs: ReadonlyArray<Record<string, unknown>>;
}

const RETRYING = "IG push failed; retrying";

/** Runs `effect` on a fresh TestClock, advancing it by each logged retry wait. */
export function onRetryClock<A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: { readonly deadlineMs?: number } = {},
): Effect.Effect<RetryClockRun<A, E>, never, R> {
  const logs: Array<Record<string, unknown>> = [];
  const capture = Logger.layer([
    Logger.formatJson.pipe(Logger.map((line) => void logs.push(JSON.parse(line)))),
  ]);
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  return Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect);
    const waits: Array<number> = [];
    let seen = 0;
    while (fiber.pollUnsafe() === undefined) {
      const next = logs.slice(seen).findIndex((l) => l.message === RETRYING);
      if (next === -1) {
        seen = logs.length;
        if (Date.now() > deadline) {
          yield* Fiber.interrupt(fiber);
          return yield* Effect.die(new Error(`No result and no retry within the deadline`));
        }
        // Real I/O (the gate's answer) is what we wait for here, so poll on the live clock.
        yield* TestClock.withLive(Effect.sleep(2));
        continue;
      }
      const line = logs[seen + next];
      seen += next + 1;
      const wait = Number((line.annotations as Record<string, unknown>).delay_ms);
      waits.push(wait);
      // The retrying fiber logs, then registers its sleep: let it get there first.
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow;
      yield* TestClock.adjust(wait);
    }
    const exit = yield* Fiber.await(fiber);
    const elapsedMs = yield* TestClock.testClockWith((clock) =>
      Effect.sync(() => clock.currentTimeMillisUnsafe())
    );
    return { exit, waits, elapsedMs, logs } satisfies RetryClockRun<A, E>;
  }).pipe(Effect.provide(TestClock.layer()), Effect.provide(capture));
}

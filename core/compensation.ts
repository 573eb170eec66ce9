/**
 * Multi-step actions that undo what they did when a step fails: each step may carry a
 * compensating effect; when step k fails, the compensations of steps k-1 … 0 run in reverse
 * order (a step without one is left as it is) and the action ends ROLLED_BACK with the failure
 * and what was compensated, never half-done without saying so. Pure Effect: the action decides
 * what a step and its compensation write and which receipt says how it ended.
 */
import { Effect } from "effect";

/** One step of a multi-step action. */
export interface Step<E, R> {
  /** Names the step in the result (e.g. `purge page 2`). */
  readonly name: string;
  readonly run: Effect.Effect<void, E, R>;
  /** Undoes `run` once it has completed; absent when the step changes nothing to undo. */
  readonly compensate?: Effect.Effect<void, E, R>;
}

/** How a multi-step action ended. */
export type StepsResult<E> =
  | { readonly status: "COMPLETED"; readonly completed: ReadonlyArray<string> }
  | {
    readonly status: "ROLLED_BACK";
    /** The step that failed, and why. */
    readonly failed_step: string;
    readonly error: E;
    /** Steps whose compensation ran, in the order they ran (reverse of completion). */
    readonly compensated: ReadonlyArray<string>;
    /** Compensations that failed themselves (the rest still ran). */
    readonly compensation_failures: ReadonlyArray<{ readonly step: string; readonly error: E }>;
  };

/**
 * Runs `steps` in order. When one fails, runs the compensations of the completed ones in reverse
 * order and answers ROLLED_BACK (a failing compensation is recorded, the others still run).
 */
export function runSteps<E, R>(
  steps: ReadonlyArray<Step<E, R>>,
): Effect.Effect<StepsResult<E>, never, R> {
  return Effect.gen(function* () {
    const completed: Array<Step<E, R>> = [];
    for (const step of steps) {
      const exit = yield* Effect.result(step.run);
      if (exit._tag === "Failure") {
        const compensated: Array<string> = [];
        const failures: Array<{ step: string; error: E }> = [];
        for (const done of [...completed].reverse()) {
          if (done.compensate === undefined) continue;
          const undone = yield* Effect.result(done.compensate);
          if (undone._tag === "Failure") failures.push({ step: done.name, error: undone.failure });
          else compensated.push(done.name);
        }
        return {
          status: "ROLLED_BACK",
          failed_step: step.name,
          error: exit.failure,
          compensated,
          compensation_failures: failures,
        } as const;
      }
      completed.push(step);
    }
    return { status: "COMPLETED", completed: completed.map((s) => s.name) } as const;
  });
}

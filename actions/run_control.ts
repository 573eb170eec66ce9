/**
 * Action `run_control`: pause, resume or cancel a run in flight, by its Supervisor id (a
 * replay's is its replay id). A pause holds the run's streamers before their next event and its
 * schedule resumes where it stood (no burst of what fell due meanwhile); a cancel stops handing
 * over, lets the lanes deliver what is already out, flushes checkpoints and ends the run
 * CANCELLED with its run_end receipt. Refusals: RUN_UNKNOWN, RUN_FINISHED, RUN_NOT_RUNNING (pause
 * of a run that is not running), RUN_NOT_PAUSED (resume of a run that is not paused).
 */
import { Effect, Schema } from "effect";
import { Supervisor } from "../actors/supervisor.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { RunInfo } from "../schemas/messages.ts";
import { type Asker, governed } from "./governed.ts";

/** What to do to which run. */
export const RunControlRequest = Schema.Struct({
  run_id: Schema.String.check(Schema.isMinLength(1)),
  action: Schema.Literals(["pause", "resume", "cancel"]),
});
export type RunControlRequest = typeof RunControlRequest.Type;

/** The run after the change (a cancel answers while the run drains: state `cancelling`). */
export const RunControlAnswer = RunInfo;
export type RunControlAnswer = RunInfo;

/**
 * Pause, resume or cancel through the door that can park it (actions/governed.ts), as
 * `run.pause`, `run.resume` or `run.cancel`.
 */
export const governedRunControl = (request: RunControlRequest, who: Asker) =>
  Effect.gen(function* () {
    // An unknown run is refused now, not after an operator approved steering nothing.
    const runs = yield* (yield* Supervisor).runs;
    if (!runs.some((r) => r.run_id === request.run_id)) {
      return yield* fail("RUN_UNKNOWN", `No run in flight has id ${request.run_id}`);
    }
    return yield* governed(`run.${request.action}`, { ...request }, who, runControl(request));
  });

/** Pauses, resumes or cancels one run in flight. */
export const runControl = Effect.fn("runControl")(function* (
  request: RunControlRequest,
): Effect.fn.Return<RunControlAnswer, WorldstreamError, Supervisor> {
  const supervisor = yield* Supervisor;
  return yield* supervisor[request.action](request.run_id);
});

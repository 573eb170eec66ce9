/**
 * Action `run_list`: the runs the Supervisor holds — those in flight (queued, running, paused,
 * cancelling) with their progress, then the last finished ones, newest first — or one of them
 * by id (RUN_UNKNOWN otherwise).
 */
import { Effect, Schema } from "effect";
import { Supervisor } from "../actors/supervisor.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { RunInfo } from "../schemas/messages.ts";

/** All runs, or one (`run_id`). */
export const RunListRequest = Schema.Struct({
  run_id: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1))),
});
export type RunListRequest = typeof RunListRequest.Type;

/** The runs asked for. */
export const RunListAnswer = Schema.Struct({ runs: Schema.Array(RunInfo) });
export type RunListAnswer = typeof RunListAnswer.Type;

/** Lists the runs in flight and the last finished ones, or one run. */
export const runList = Effect.fn("runList")(function* (
  request: RunListRequest,
): Effect.fn.Return<RunListAnswer, WorldstreamError, Supervisor> {
  const supervisor = yield* Supervisor;
  if (request.run_id !== undefined) return { runs: [yield* supervisor.run(request.run_id)] };
  return { runs: yield* supervisor.runs };
});

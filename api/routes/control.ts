/**
 * Steering routes: `POST /v1/replay` (replay one window of one output: actions/replay.ts) and
 * `POST /v1/runs/{run}/pause|resume|cancel` (actions/run_control.ts, by the Supervisor's run id,
 * a replay's being its replay id, or by the run key of a run in flight), plus `GET /v1/runs/live` (every run in flight and the last
 * finished ones, replays included, with their progress). Each mutating route is authorized first
 * through the one door (actors/governance.ts) as the token's principal (`user:operator`):
 * `wsp.replay`, `run.pause`, `run.resume`, `run.cancel`; a refusal is POLICY_DENIED or
 * APPROVAL_REQUIRED and nothing happens.
 */
import { Effect, Schema } from "effect";
import { authorize } from "../../actors/governance.ts";
import { RunConfig } from "../../actors/run_config.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { replay, ReplayAnswer, ReplayRequest } from "../../actions/replay.ts";
import { runControl } from "../../actions/run_control.ts";
import { runList, RunListAnswer } from "../../actions/run_list.ts";
import { RunInfo } from "../../schemas/messages.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import type { Principal } from "../auth.ts";

const RunId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_.:-]{1,128}$/, { expected: "a run id" }),
);

const whoAsks = (principal: Principal | undefined) => principal?.name ?? "user:anonymous";

/**
 * The Supervisor's run id for `run`: a run id (a replay's is its replay id) as given, or the run
 * key of a run still in flight (what `/v1/status` and the dashboard show).
 */
const runIdOf = (run: string) =>
  Effect.gen(function* () {
    const runs = yield* (yield* Supervisor).runs;
    if (runs.some((r) => r.run_id === run)) return run;
    return runs.find((r) => r.run_key === run && r.state !== "finished")?.run_id ?? run;
  });

/** One of pause/resume/cancel as a route. */
function controlRoute(action: "pause" | "resume" | "cancel") {
  return jsonRoute({
    method: "post",
    path: `/v1/runs/{run}/${action}`,
    summary: `${action[0].toUpperCase()}${action.slice(1)} a run in flight (or a replay) by its id`,
    params: Schema.Struct({ run: RunId }),
    response: RunInfo,
    handle: ({ params, principal }) =>
      Effect.gen(function* () {
        const { profile } = yield* RunConfig;
        yield* authorize(whoAsks(principal), `run.${action}`, {
          profile,
          source: "api",
          detail: { run_id: params.run },
        });
        return yield* runControl({ run_id: yield* runIdOf(params.run), action });
      }),
  });
}

/** The steering resource. */
export const controlRoutes: RouteModule = {
  name: "control",
  routes: [
    jsonRoute({
      method: "post",
      path: "/v1/replay",
      summary:
        "Replay one window of one output ([from_ts, to_ts) or [from_seq, to_seq)) with the stream's own event ids; 202 once its window is found",
      body: ReplayRequest,
      response: ReplayAnswer,
      status: 202,
      handle: ({ body, principal }) =>
        Effect.gen(function* () {
          const { profile } = yield* RunConfig;
          yield* authorize(whoAsks(principal), "wsp.replay", {
            profile,
            source: "api",
            detail: { ...body },
          });
          return yield* replay(body);
        }),
    }),
    jsonRoute({
      method: "get",
      path: "/v1/runs/live",
      summary:
        "Runs in flight (runs and replays, with id, state and progress) and the last finished",
      response: RunListAnswer,
      handle: () => runList({}),
    }),
    controlRoute("pause"),
    controlRoute("resume"),
    controlRoute("cancel"),
  ],
};

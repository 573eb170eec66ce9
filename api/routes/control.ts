/**
 * Steering routes: `POST /v1/replay` (replay one window of one output: actions/replay.ts) and
 * `POST /v1/runs/{run}/pause|resume|cancel` (actions/run_control.ts, by the Supervisor's run id,
 * a replay's being its replay id, or by the run key of a run in flight), plus `GET /v1/runs/live` (every run in flight and the last
 * finished ones, replays included, with their progress). Each mutating route is authorized first
 * through the one door (actors/governance.ts) as the token's principal (`user:operator`):
 * `wsp.replay`, `run.pause`, `run.resume`, `run.cancel` (actions/governed.ts): a DENY is
 * POLICY_DENIED and nothing happens; a REQUIRE_APPROVAL parks the request and answers 202
 * `{approval_id, status: "PENDING", ...}` (approving it through `POST /v1/approvals/{id}` runs it).
 */
import { Effect, Schema } from "effect";
import { Supervisor } from "../../actors/supervisor.ts";
import { Parked } from "../../actions/governed.ts";
import { governedReplay, ReplayAnswer, ReplayRequest } from "../../actions/replay.ts";
import { governedRunControl } from "../../actions/run_control.ts";
import { runList, RunListAnswer } from "../../actions/run_list.ts";
import { RunInfo } from "../../schemas/messages.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { asking, parkedStatus } from "./approvals.ts";

const RunId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_.:-]{1,128}$/, { expected: "a run id" }),
);

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
    response: Schema.Union([RunInfo, Parked]),
    status: parkedStatus,
    handle: ({ params, principal }) =>
      Effect.gen(function* () {
        const runId = yield* runIdOf(params.run);
        return yield* asking(
          principal,
          (who) => governedRunControl({ run_id: runId, action }, who),
        );
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
      response: Schema.Union([ReplayAnswer, Parked]),
      status: 202,
      handle: ({ body, principal }) => asking(principal, (who) => governedReplay(body, who)),
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

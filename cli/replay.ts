/**
 * `worldstream replay`: re-sends one window of one output of a world (the `replay` action) on a
 * runtime of its own, with the live progress display on a terminal, and waits for it to end. The
 * last stdout line is the StreamResult JSON with the replay's id and window; exit codes as
 * `stream` (0 STREAMED, 3 dead letters, 130 stopped by a signal, 1 any other failure, a bad
 * window included). It is authorized as `wsp.replay` for the runtime (`svc:<producer>`); a policy
 * that asks for an approval parks it (exit 4, APPROVAL_PENDING), and since a replay runs on a
 * runtime, it is then approved through the admin API of a running one.
 */
import { Effect } from "effect";
import { isParked } from "../actions/governed.ts";
import { governedReplay, type ReplayRequest } from "../actions/replay.ts";
import { servicePrincipal } from "../actors/governance.ts";
import { bootstrap } from "../actors/bootstrap.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { loadProfile } from "../core/profile.ts";
import {
  type Flags,
  httpUrlFlag,
  intFlag,
  numberFlag,
  parseFlags,
  profileFlag,
  requireFlag,
} from "./args.ts";
import { parkedOutcome } from "./commands.ts";
import { streamOutcome, withProgressDisplay } from "./stream.ts";

/** Parses `replay` flags, starts the replay and waits for its result. */
export function replayCommand(argv: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      "engine-run-root": "string",
      "output-id": "string",
      "from-ts": "string",
      "to-ts": "string",
      "from-seq": "string",
      "to-seq": "string",
      "scenario-id": "string",
      "platform-run-id": "string",
      speedup: "string",
      "ig-url": "string",
      profile: "string",
    });
    // Every flag is checked before anything is opened or written.
    const request = yield* requestFrom(flags);
    const igUrl = yield* httpUrlFlag(flags, "ig-url");
    const profile = yield* loadProfile(profileFlag(flags));
    const config = runConfigOf(profile, igUrl ? { igUrl } : {});
    const who = {
      profile,
      principal: servicePrincipal(profile.wiring.wsp_producer.producer_id),
      source: "cli",
    };
    const done = yield* Effect.scoped(
      bootstrap(config.profile, config.courier.endpoint, config.bootstrap).pipe(
        Effect.andThen(withProgressDisplay(Effect.gen(function* () {
          const started = yield* governedReplay(request, who);
          if (isParked(started)) return started;
          const result = yield* (yield* Supervisor).result(started.replay_id);
          return { started, result };
        }))),
        Effect.provide(coreLayer(config, { signals: true })),
      ),
    );
    if (isParked(done)) return parkedOutcome(done);
    const { started, result } = done;
    return {
      line: {
        ...result,
        replay_id: started.replay_id,
        from_seq: started.from_seq,
        to_seq: started.to_seq,
        events: started.events,
      },
      ...streamOutcome(result),
    };
  });
}

function requestFrom(flags: Flags) {
  return Effect.gen(function* () {
    const str = (name: string) =>
      typeof flags[name] === "string" && flags[name] !== "" ? flags[name] as string : undefined;
    const fromSeq = yield* intFlag(flags, "from-seq", { min: 0 });
    const toSeq = yield* intFlag(flags, "to-seq", { min: 0 });
    const speedup = yield* numberFlag(flags, "speedup", { min: 0 });
    return {
      engine_run_root: yield* requireFlag(flags, "engine-run-root"),
      output_id: yield* requireFlag(flags, "output-id"),
      ...(str("scenario-id") ? { scenario_id: str("scenario-id") } : {}),
      ...(str("platform-run-id") ? { platform_run_id: str("platform-run-id") } : {}),
      ...(str("from-ts") ? { from_ts: str("from-ts") } : {}),
      ...(str("to-ts") ? { to_ts: str("to-ts") } : {}),
      ...(fromSeq === undefined ? {} : { from_seq: fromSeq }),
      ...(toSeq === undefined ? {} : { to_seq: toSeq }),
      ...(speedup === undefined ? {} : { speedup }),
    } satisfies ReplayRequest;
  });
}

/**
 * Action `stream_world`: one run of one world into the IG, without the control bus. It builds
 * the streaming core for a run configuration (derived once by the caller from the profile and
 * its overrides), runs the start-up checks, submits the run to the Supervisor and answers its
 * StreamResult; the runtime is closed (checkpoints flushed) before it returns. Missing stream
 * views are built first, by the run itself.
 */
import { Effect } from "effect";
import { bootstrap } from "../actors/bootstrap.ts";
import type { RunConfigShape } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { RunRequested, StreamResult } from "../schemas/messages.ts";

/** How the caller watches the run. */
export interface StreamWorldOptions {
  /** Stop the run on SIGINT/SIGTERM (a command's run; off in tests). */
  readonly signals?: boolean;
  /**
   * Wraps the submitted run while it goes, e.g. a terminal progress display that reads the
   * Supervisor's progress; default: none.
   */
  readonly watch?: <A, E>(
    run: Effect.Effect<A, E, Supervisor>,
  ) => Effect.Effect<A, E | WorldstreamError, Supervisor>;
}

/** Runs `request` on a runtime of its own built from `config`; answers the run's result. */
export function streamWorld(
  config: RunConfigShape,
  request: RunRequested,
  options: StreamWorldOptions = {},
): Effect.Effect<StreamResult, WorldstreamError> {
  const watch = options.watch ?? ((run) => run);
  return Effect.scoped(
    bootstrap(config.profile, config.courier.endpoint, config.bootstrap).pipe(
      Effect.andThen(watch(Effect.gen(function* () {
        return yield* (yield* Supervisor).submit(request);
      }))),
      Effect.provide(coreLayer(config, { signals: options.signals === true })),
    ),
  );
}

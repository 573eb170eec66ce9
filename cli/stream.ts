/**
 * `worldstream stream`: one run of one world into the IG, without the control bus (the
 * `stream_world` action), with a live progress display on a terminal. The last stdout line is the StreamResult JSON; exit 0 only on STREAMED
 * (see {@link streamOutcome} for the others).
 */
import { Clock, Effect } from "effect";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { loadProfile } from "../core/profile.ts";
import { type ProgressItem, withProgress } from "../core/progress.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { RunRequested, StreamResult } from "../schemas/messages.ts";
import { streamWorld } from "../actions/stream_world.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { type OutputProgress, Supervisor } from "../actors/supervisor.ts";
import {
  type Flags,
  httpUrlFlag,
  intFlag,
  numberFlag,
  parseFlags,
  profileFlag,
  uniqueListFlag,
} from "./args.ts";
import { EXIT_CODES } from "./commands.ts";

/** Parses `stream` flags into a run request and runs it on the profile's runtime. */
export function streamCommand(argv: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      "engine-run-root": "string",
      profile: "string",
      "scenario-id": "string",
      "platform-run-id": "string",
      "scenario-run-id": "string",
      "output-ids": "string",
      "max-events": "string",
      "max-events-per-output": "string",
      speedup: "string",
      "ig-url": "string",
    });
    // Every flag is checked before anything is opened or written.
    const request = yield* requestFrom(flags);
    const igUrl = yield* httpUrlFlag(flags, "ig-url");
    const profile = yield* loadProfile(profileFlag(flags));
    const config = runConfigOf(profile, igUrl ? { igUrl } : {});
    const result = yield* streamWorld(config, request, {
      signals: true,
      watch: withProgressDisplay,
    });
    return { line: { ...result }, ...streamOutcome(result) };
  });
}

/**
 * A job's exit status: 0 only for a clean STREAMED; a stop by SIGINT/SIGTERM is 130 (what a
 * shell reports for Ctrl-C, so a script sees an interruption, not a broken world; resume by
 * running the same command); dead letters 3; any other failure 1.
 */
export function streamOutcome(result: StreamResult): { ok: boolean; code?: number } {
  if (result.status === "STREAMED") return { ok: true };
  if (result.status === "STREAMED_WITH_DEAD_LETTERS") {
    return { ok: false, code: EXIT_CODES.deadLetters };
  }
  if (result.reason === "STOPPED_BY_OPERATOR") return { ok: false, code: EXIT_CODES.stopped };
  return { ok: false };
}

/**
 * Runs `effect` while the Supervisor's run shows its per-output progress (bar, count, rate, ETA)
 * on a terminal, or as a log line per output every few seconds otherwise (core/progress.ts).
 * `resultOf` finds the run's result in the effect's, so the last line shows the final counts.
 */
export function withProgressDisplay<A, E, R>(
  effect: Effect.Effect<A, E, R>,
  resultOf: (a: A) => StreamResult | undefined = (a) => isStreamResult(a) ? a : undefined,
) {
  return Effect.gen(function* () {
    const supervisor = yield* Supervisor;
    return yield* withProgress(supervisor.progress.pipe(Effect.map(progressItems)), effect, {
      final: (a, last) => {
        const outputs = resultOf(a)?.outputs ?? [];
        return last.map((item) => {
          const out = outputs.find((o) => o.output_id === item.id);
          return out === undefined ? item : { ...item, done: out.emitted };
        });
      },
    });
  });
}

/** The progress items of a run's outputs. */
export function progressItems(outputs: ReadonlyArray<OutputProgress>): Array<ProgressItem> {
  return outputs.map((o) => ({
    id: o.output_id,
    done: o.emitted,
    total: o.total,
    detail: `adm ${o.admitted} dup ${o.duplicate} quar ${o.quarantined}${
      o.retries ? ` retries ${o.retries}` : ""
    }`,
  }));
}

function isStreamResult(a: unknown): a is StreamResult {
  return typeof a === "object" && a !== null && "status" in a && "emitted" in a;
}

function requestFrom(flags: Flags): Effect.Effect<RunRequested, WorldstreamError> {
  return Effect.gen(function* () {
    const str = (name: string) =>
      typeof flags[name] === "string" && flags[name] !== "" ? flags[name] as string : undefined;
    const platformRunId = str("platform-run-id") ??
      platformRunIdAt(yield* Clock.currentTimeMillis);
    const maxEvents = yield* intFlag(flags, "max-events", { min: 1 });
    const perOutput = yield* intFlag(flags, "max-events-per-output", { min: 1 });
    const speedup = yield* numberFlag(flags, "speedup", { min: 0 });
    const outputIds = yield* uniqueListFlag(flags, "output-ids");
    const root = str("engine-run-root");
    return {
      _tag: "RunRequested",
      source: "operator",
      platform_run_id: platformRunId,
      ...(root ? { engine_run_root: root } : {}),
      ...(str("scenario-id") ? { scenario_id: str("scenario-id") } : {}),
      ...(str("scenario-run-id") ? { scenario_run_id: str("scenario-run-id") } : {}),
      ...(outputIds ? { output_ids: outputIds } : {}),
      ...(maxEvents === undefined ? {} : { max_events: maxEvents }),
      ...(perOutput === undefined ? {} : { max_events_per_output: perOutput }),
      ...(speedup === undefined ? {} : { speedup }),
    } satisfies RunRequested;
  });
}

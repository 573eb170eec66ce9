/**
 * The command table of the `worldstream` CLI: each command parses its flags, does its work and
 * returns the JSON result line and whether it succeeded. main.ts prints and exits.
 */
import { Effect } from "effect";
import { resolve } from "node:path";
import { loadProfile, type Profile, selectOutputIds } from "../core/profile.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { DuckDb } from "../stores/duckdb.ts";
import { genWorld, parseGenWorldArgs } from "../scripts/gen_world.ts";
import { listFlag, parseFlags } from "./args.ts";
import { publishReadyCommand } from "./publish_ready.ts";
import { sortWorld } from "./sort.ts";
import { streamCommand } from "./stream.ts";
import { runCommand } from "./run.ts";
import { igCommand } from "./ig.ts";
import { auditVerifyCommand } from "./audit_verify.ts";
import { deadLettersCommand } from "./dead_letters.ts";

/** A command's outcome: the result line (stdout) and the exit code. */
export interface Outcome {
  readonly line: Record<string, unknown>;
  readonly ok: boolean;
}

type Command = (argv: ReadonlyArray<string>) => Effect.Effect<Outcome, WorldstreamError, DuckDb>;

const genWorldCommand: Command = (argv) =>
  parseGenWorldArgs(argv).pipe(
    Effect.flatMap(genWorld),
    Effect.map((result) => ({ line: { ...result }, ok: true })),
  );

const sortCommand: Command = (argv) =>
  Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      "engine-run-root": "string",
      "output-ids": "string",
      "scenario-id": "string",
      profile: "string",
      repair: "boolean",
    });
    const profile = yield* loadProfile(String(flags.profile ?? "local"));
    const root = flags["engine-run-root"] ?? profile.wiring.oracle_engine_run_root;
    if (typeof root !== "string" || root === "") {
      return yield* fail(
        "ENGINE_ROOT_MISSING",
        "Give --engine-run-root (or set ORACLE_ENGINE_RUN_ROOT)",
      );
    }
    return yield* sortWith(profile, root, {
      outputIds: listFlag(flags, "output-ids"),
      scenarioId: flags["scenario-id"] as string | undefined,
      repair: flags.repair === true,
    });
  });

function sortWith(
  profile: Profile,
  root: string,
  options: { outputIds?: ReadonlyArray<string>; scenarioId?: string; repair?: boolean },
) {
  const selected = selectOutputIds(profile);
  const outputIds = options.outputIds ?? [...selected.traffic, ...selected.context];
  const viewRoot = profile.wiring.oracle_stream_view_root;
  return sortWorld({
    engineRunRoot: resolve(root),
    outputIds,
    strict: profile.policy.strict_world,
    requireGatePass: profile.policy.require_gate_pass,
    scenarioId: options.scenarioId ?? profile.wiring.oracle_scenario_id,
    interfacePackDir: profile.paths.interfacePack,
    ...(viewRoot ? { streamViewRoot: resolve(viewRoot) } : {}),
    repair: options.repair,
  }).pipe(Effect.map((result) => ({ line: { ...result }, ok: result.status === "OK" })));
}

/** Commands by name (each `deno task X` maps to one). */
export const COMMANDS: Readonly<Record<string, Command>> = {
  "gen-world": genWorldCommand,
  sort: sortCommand,
  stream: streamCommand,
  "publish-ready": publishReadyCommand,
  run: runCommand,
  ig: igCommand,
  "audit-verify": auditVerifyCommand,
  "dead-letters": (argv) => deadLettersCommand(argv),
};

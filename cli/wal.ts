/**
 * `worldstream wal inspect|salvage`: the operator's way out of a WAL that refuses to open with
 * WAL_CORRUPT (a damaged record with intact records after it, so not a torn tail). Parses flags
 * and calls actors/wal/salvage.ts, which says what each does.
 *
 *   wal inspect [--profile P | --dir DIR]
 *     {"status":"OK"|"TORN_TAIL"|"CORRUPT","dir","drained","segments":[{segment, bytes, records,
 *     damage:[{offset,end,problem}], verdict}]}; exit 1 when CORRUPT (the runtime will not start)
 *   wal salvage [--profile P | --dir DIR]
 *     {"status":"SALVAGED"|"CLEAN","dir","drained","segments":[{segment, bytes_before,
 *     bytes_after, records_kept, damage, saved_as}]}; takes the WAL's lock (WAL_LOCKED while a
 *     runtime has it open)
 *
 * The WAL is the profile's (`<runs_root>/wal`) unless `--dir` names the folder, as WAL_CORRUPT's
 * message does.
 */
import { Effect } from "effect";
import { existsSync } from "node:fs";
import { inspectWal, salvageWal } from "../actors/wal/salvage.ts";
import { runtimePaths } from "../actors/runtime.ts";
import { loadProfile } from "../core/profile.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type Flags, parseFlags, profileFlag } from "./args.ts";
import type { Outcome } from "./commands.ts";

const FLAGS = { profile: "string", dir: "string" } as const;

/** Runs `wal inspect` or `wal salvage`. */
export function walCommand(argv: ReadonlyArray<string>): Effect.Effect<Outcome, WorldstreamError> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "inspect":
      return Effect.gen(function* () {
        const result = yield* inspectWal(yield* walDir(yield* parseFlags(rest, FLAGS)));
        return { line: { ...result }, ok: result.status !== "CORRUPT" };
      });
    case "salvage":
      return Effect.gen(function* () {
        const result = yield* salvageWal(yield* walDir(yield* parseFlags(rest, FLAGS)));
        return { line: { ...result }, ok: true };
      });
    default:
      return Effect.fail(
        fail("BAD_ARGS", `Usage: wal <inspect|salvage> [flags]; got ${sub ?? "nothing"}`),
      );
  }
}

function walDir(flags: Flags): Effect.Effect<string, WorldstreamError> {
  return Effect.gen(function* () {
    const given = typeof flags.dir === "string" && flags.dir !== "" ? flags.dir : undefined;
    if (given !== undefined && flags.profile !== undefined) {
      return yield* fail("BAD_ARGS", "Give --dir or --profile, not both");
    }
    const dir = given ?? runtimePaths(yield* loadProfile(profileFlag(flags))).wal;
    if (!existsSync(dir)) return yield* fail("BAD_ARGS", `There is no WAL folder at ${dir}`);
    return dir;
  });
}

/**
 * `worldstream validate [--profile P] [--engine-run-root R] [--ig-url URL] [--smoke-events N]`:
 * the operator's checks of a profile in one command (the `validate` action): one line per check
 * on stderr for people, the JSON result `{status, reason, checks: [{name, status, reason?,
 * detail}]}` on stdout, exit 0 only when every check passed.
 *
 * On the `local` profile, what it is not given comes from `run`'s demo defaults: the demo world
 * under the runs root (generated on first use) and the reference gate started in process on
 * loopback. Other profiles use their `wiring`; a world must then be named.
 */
import { Effect } from "effect";
import { join } from "node:path";
import { type Check, validate } from "../actions/validate.ts";
import { genWorld } from "../actions/gen_world.ts";
import { startIg } from "../ig/server.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { httpUrlFlag, intFlag, parseFlags, profileFlag } from "./args.ts";
import type { Outcome } from "./commands.ts";
import { DEMO_EVENTS } from "./run.ts";

/** Events per output in each bounded run unless `--smoke-events` says otherwise. */
export const SMOKE_EVENTS = 100;

/** The `validate` command. */
export function validateCommand(argv: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      profile: "string",
      "engine-run-root": "string",
      "ig-url": "string",
      "smoke-events": "string",
    });
    const igUrl = yield* httpUrlFlag(flags, "ig-url");
    const smokeEvents = yield* intFlag(flags, "smoke-events", { min: 1, max: 100_000 });
    const root = flags["engine-run-root"];
    const result = yield* Effect.scoped(validate({
      profile: profileFlag(flags),
      ...(typeof root === "string" && root !== "" ? { engineRunRoot: root } : {}),
      ...(igUrl ? { igUrl } : {}),
      smokeEvents: smokeEvents ?? SMOKE_EVENTS,
      defaults: (profile, wanted) =>
        profile.profile_id !== "local" ? Effect.succeed({}) : Effect.gen(function* () {
          const world = wanted.engineRunRoot
            ? (yield* genWorld({
              out: join(profile.paths.runsRoot, "demo_world"),
              events: DEMO_EVENTS,
            }).pipe(Effect.provide(DuckDb.layer()))).engine_run_root
            : undefined;
          const ig = wanted.igUrl
            ? (yield* startIg({
              host: "127.0.0.1",
              port: 0,
              db: join(profile.paths.runsRoot, "ig-pglite"),
            })).url
            : undefined;
          return {
            ...(world === undefined ? {} : { engineRunRoot: world }),
            ...(ig === undefined ? {} : { igUrl: ig }),
          };
        }),
    }));
    for (const check of result.checks) console.error(reportLine(check));
    console.error(`validate: ${result.status}`);
    return { line: { ...result }, ok: result.status === "PASSED" } satisfies Outcome;
  });
}

/** A check as one line for people: status, name, reason when it did not pass, detail. */
export function reportLine(check: Check): string {
  const reason = check.reason ? ` ${check.reason}:` : "";
  return `${check.status.padEnd(7)} ${check.name.padEnd(20)}${reason} ${check.detail}`;
}

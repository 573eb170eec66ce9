/**
 * The world generator as a script, for benches and dev tools that run it without the CLI:
 *
 *   deno run -A scripts/gen_world.ts --out DIR [--events N] [--seed S] [--scenario-id ID] [--parts P]
 *
 * The generator itself is the action actions/gen_world.ts; this file re-exports it so scripts
 * keep one import path.
 */
import { Effect } from "effect";
import { genWorld } from "../actions/gen_world.ts";
import { parseGenWorldArgs } from "../cli/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";

export * from "../actions/gen_world.ts";

if (import.meta.main) {
  const program = parseGenWorldArgs(Deno.args).pipe(
    Effect.flatMap((options) => genWorld(options).pipe(Effect.provide(DuckDb.layer()))),
    Effect.map((result) => {
      console.log(JSON.stringify(result));
      return 0;
    }),
    Effect.catch((e) =>
      Effect.sync(() => {
        console.error(JSON.stringify({ reason: e.reason, message: e.message }));
        return e.reason === "BAD_ARGS" ? 2 : 1;
      })
    ),
  );
  Deno.exitCode = await Effect.runPromise(program);
}

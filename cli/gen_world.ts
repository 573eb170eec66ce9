/**
 * `worldstream gen-world --out DIR [--events N] [--seed S] [--scenario-id ID] [--parts P]`: parses
 * flags and calls the `gen_world` action (actions/gen_world.ts), then prints its result.
 */
import { Effect } from "effect";
import { genWorld, type GenWorldOptions } from "../actions/gen_world.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { intFlag, parseFlags, requireFlag } from "./args.ts";
import type { Command } from "./commands.ts";

export const genWorldCommand: Command = (argv) =>
  parseGenWorldArgs(argv).pipe(
    Effect.flatMap(genWorld),
    Effect.map((result) => ({ line: { ...result }, ok: true })),
  );

/** Parses `--out DIR [--events N] [--seed S] [--scenario-id ID] [--parts P]`; fails BAD_ARGS. */
export function parseGenWorldArgs(
  argv: ReadonlyArray<string>,
): Effect.Effect<GenWorldOptions, WorldstreamError> {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      out: "string",
      events: "string",
      seed: "string",
      "scenario-id": "string",
      parts: "string",
    });
    const out = yield* requireFlag(flags, "out");
    const events = yield* intFlag(flags, "events", { min: 1 });
    const seed = yield* intFlag(flags, "seed", { min: 0 });
    const parts = yield* intFlag(flags, "parts", { min: 1 });
    const scenarioId = flags["scenario-id"];
    return {
      out,
      ...(events === undefined ? {} : { events }),
      ...(seed === undefined ? {} : { seed }),
      ...(typeof scenarioId === "string" ? { scenarioId } : {}),
      ...(parts === undefined ? {} : { parts }),
    };
  });
}

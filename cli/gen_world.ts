/**
 * `worldstream gen-world --out DIR [--events N] [--seed S] [--scenario-id ID] [--parts P]`: parses
 * flags and calls the `gen_world` action (actions/gen_world.ts), then prints its result.
 */
import { Effect } from "effect";
import { genWorld, type GenWorldOptions } from "../actions/gen_world.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { parseFlags, requireFlag } from "./args.ts";
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
    const events = yield* intFlag(flags.events, "events");
    const seed = yield* intFlag(flags.seed, "seed");
    const parts = yield* intFlag(flags.parts, "parts");
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

function intFlag(
  value: string | boolean | undefined,
  name: string,
): Effect.Effect<number | undefined, WorldstreamError> {
  if (value === undefined) return Effect.succeed(undefined);
  const n = typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(n)
    ? Effect.succeed(n)
    : Effect.fail(fail("BAD_ARGS", `--${name} must be a non-negative integer, got ${value}`));
}

/**
 * `worldstream gen-world`: writes a synthetic world (scripts/gen_world.ts) and prints its result.
 */
import { Effect } from "effect";
import { genWorld, parseGenWorldArgs } from "../actions/gen_world.ts";
import type { Command } from "./commands.ts";

export const genWorldCommand: Command = (argv) =>
  parseGenWorldArgs(argv).pipe(
    Effect.flatMap(genWorld),
    Effect.map((result) => ({ line: { ...result }, ok: true })),
  );

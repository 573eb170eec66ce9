/**
 * The command table of the `worldstream` CLI: each command parses its flags, does its work and
 * returns the JSON result line and whether it succeeded. main.ts prints and exits.
 */
import type { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { DuckDb } from "../stores/duckdb.ts";
import { genWorldCommand } from "./gen_world.ts";
import { publishReadyCommand } from "./publish_ready.ts";
import { sortCommand } from "./sort.ts";
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

export type Command = (
  argv: ReadonlyArray<string>,
) => Effect.Effect<Outcome, WorldstreamError, DuckDb>;

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

/** Command-line flags: parsed strictly, so a typo is an error (BAD_ARGS), not a silent default. */
import { Effect } from "effect";
import { parseArgs } from "node:util";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** Flag spec: name → kind. */
export type FlagSpec = Readonly<Record<string, "string" | "boolean">>;

/** Parsed flags by name (strings or booleans). */
export type Flags = Readonly<Record<string, string | boolean | undefined>>;

/**
 * Parses `argv` against `spec`; unknown flags, missing values and positionals fail BAD_ARGS. An
 * unknown flag's message lists the flags the command accepts.
 */
export function parseFlags(
  argv: ReadonlyArray<string>,
  spec: FlagSpec,
): Effect.Effect<Flags, WorldstreamError> {
  return Effect.try({
    try: () => {
      const options = Object.fromEntries(Object.entries(spec).map(([k, type]) => [k, { type }]));
      return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
        .values as Flags;
    },
    catch: (e) => fail("BAD_ARGS", problemOf(e as Error & { code?: string }, spec)),
  });
}

function problemOf(error: Error & { code?: string }, spec: FlagSpec): string {
  const unknown = /^Unknown option '([^']+)'/.exec(error.message)?.[1];
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== undefined) {
    const accepted = Object.keys(spec).map((name) => `--${name}`).join(", ");
    return `Unknown flag ${unknown} (accepted: ${accepted || "none"}; --help shows what each does)`;
  }
  return error.message.split("\n")[0];
}

/** A required string flag. */
export function requireFlag(flags: Flags, name: string): Effect.Effect<string, WorldstreamError> {
  const v = flags[name];
  return typeof v === "string" && v !== ""
    ? Effect.succeed(v)
    : Effect.fail(fail("BAD_ARGS", `Missing --${name}`));
}

/** A comma-separated list flag (`a,b`), or `undefined` when absent. */
export function listFlag(flags: Flags, name: string): ReadonlyArray<string> | undefined {
  const v = flags[name];
  return typeof v === "string"
    ? v.split(",").map((s) => s.trim()).filter((s) => s !== "")
    : undefined;
}

/** Command-line flags: parsed strictly, so a typo is an error (BAD_ARGS), not a silent default. */
import { Effect } from "effect";
import { parseArgs } from "node:util";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { profileName } from "../core/profile_source.ts";

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

/** A comma-separated list of ids; an id given twice fails BAD_ARGS naming it. */
export function uniqueListFlag(
  flags: Flags,
  name: string,
): Effect.Effect<ReadonlyArray<string> | undefined, WorldstreamError> {
  const list = listFlag(flags, name);
  const twice = list?.find((id, i) => list.indexOf(id) !== i);
  return twice === undefined
    ? Effect.succeed(list)
    : Effect.fail(fail("BAD_ARGS", `--${name} names ${twice} twice`));
}

/** Bounds of a numeric flag (inclusive). */
export interface NumberBounds {
  readonly min?: number;
  readonly max?: number;
}

/**
 * A whole-number flag (`0`, `42`; never `1.5`, `1e3`, `+1` or `0x10`), or `undefined` when
 * absent. Fails BAD_ARGS naming the flag and the value.
 */
export function intFlag(
  flags: Flags,
  name: string,
  bounds: NumberBounds = {},
): Effect.Effect<number | undefined, WorldstreamError> {
  const value = flags[name];
  if (value === undefined) return Effect.succeed(undefined);
  const n = typeof value === "string" && /^-?[0-9]+$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(n) && inBounds(n, bounds) ? Effect.succeed(n) : Effect.fail(
    fail("BAD_ARGS", `--${name} must be a whole number${range(bounds)}, got ${show(value)}`),
  );
}

/** A decimal number flag (`0.5`, `600`), finite and within `bounds`, or `undefined`. */
export function numberFlag(
  flags: Flags,
  name: string,
  bounds: NumberBounds = {},
): Effect.Effect<number | undefined, WorldstreamError> {
  const value = flags[name];
  if (value === undefined) return Effect.succeed(undefined);
  const n = typeof value === "string" && /^-?([0-9]+\.?[0-9]*|\.[0-9]+)$/.test(value)
    ? Number(value)
    : NaN;
  return Number.isFinite(n) && inBounds(n, bounds) ? Effect.succeed(n) : Effect.fail(
    fail("BAD_ARGS", `--${name} must be a number${range(bounds)}, got ${show(value)}`),
  );
}

/**
 * An http(s) URL flag (the gate's base URL), parsed up front, or `undefined` when absent: a URL
 * that does not parse, or of another scheme, fails BAD_ARGS here instead of inside a run.
 */
export function httpUrlFlag(
  flags: Flags,
  name: string,
): Effect.Effect<string | undefined, WorldstreamError> {
  const value = flags[name];
  if (value === undefined) return Effect.succeed(undefined);
  const url = typeof value === "string" && URL.canParse(value) ? new URL(value) : undefined;
  if (url === undefined) {
    return Effect.fail(fail("BAD_ARGS", `--${name} must be an http(s) URL, got ${show(value)}`));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Effect.fail(
      fail(
        "BAD_ARGS",
        `--${name} must be an http:// or https:// URL, got ${url.protocol} in ${show(value)}`,
      ),
    );
  }
  return Effect.succeed(String(value));
}

function inBounds(n: number, bounds: NumberBounds): boolean {
  return (bounds.min === undefined || n >= bounds.min) &&
    (bounds.max === undefined || n <= bounds.max);
}

function range(bounds: NumberBounds): string {
  if (bounds.min !== undefined && bounds.max !== undefined) {
    return ` from ${bounds.min} to ${bounds.max}`;
  }
  if (bounds.min !== undefined) return ` >= ${bounds.min}`;
  if (bounds.max !== undefined) return ` <= ${bounds.max}`;
  return "";
}

function show(value: string | boolean): string {
  return JSON.stringify(value);
}

/** The profile a command loads: `--profile`, else `$WORLDSTREAM_PROFILE`, else `local`. */
export function profileFlag(flags: Flags, env: Env = Deno.env.toObject()): string {
  return profileName(flags.profile, env);
}

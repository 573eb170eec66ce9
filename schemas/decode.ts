/**
 * The one door through which platform data enters: decode against a wire-format schema and
 * turn the first problem into a `WorldstreamError` with a one-line message naming the source,
 * the field and what was wrong.
 *
 * Excess keys are rejected everywhere; formats the contracts leave open (`additionalProperties:
 * true`) are modelled with a record rest, so their extra keys are kept, not stripped.
 */
import { Effect, Schema, SchemaIssue } from "effect";
import { fail, WorldstreamError } from "./errors.ts";
import type { ReasonCode } from "./reasons.ts";

const PARSE_OPTIONS = { onExcessProperty: "error", reportInput: true } as const;
const MAX_PROBLEM_CHARS = 240;

const formatter = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => {
    switch (issue._tag) {
      case "UnexpectedKey":
        return "Unexpected key (the format does not allow extra keys)";
      case "MissingKey":
        return "Missing required key";
      default:
        return SchemaIssue.defaultLeafHook(issue);
    }
  },
});

/**
 * Decodes unknown input with `schema`; on failure fails with `reason` and a message like
 * `runs/x/_oracle_pack_manifest.json: world_key.seed: Expected an integer ..., got -1`.
 */
export function decodeWith<S extends Schema.Decoder<unknown>>(
  schema: S,
  reason: ReasonCode,
  what: string,
): (input: unknown) => Effect.Effect<S["Type"], WorldstreamError> {
  const decode = Schema.decodeUnknownEffect(schema);
  return (input) =>
    decode(input, PARSE_OPTIONS).pipe(
      Effect.mapError((error) => fail(reason, describe(what, error.issue))),
    );
}

/** Like {@link decodeWith} for raw JSON text; malformed JSON fails with the same reason. */
export function decodeJsonText<S extends Schema.Decoder<unknown>>(
  schema: S,
  reason: ReasonCode,
  what: string,
): (text: string) => Effect.Effect<S["Type"], WorldstreamError> {
  const decode = decodeWith(schema, reason, what);
  return (text) =>
    Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => fail(reason, `${what}: Malformed JSON: ${oneLine(errorText(error))}`),
    }).pipe(Effect.flatMap(decode));
}

/** Renders a field path as `world_key.seed`, `locators[0].path` or `["odd key"]`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) {
      out += out === "" ? key : `.${key}`;
    } else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** The first problem of `issue` as one line, `what: field.path: problem` (as decodeWith says it). */
export function describe(what: string, issue: SchemaIssue.Issue): string {
  const first = formatter(issue).issues[0];
  const problem = truncate(oneLine(first?.message ?? "Invalid value"));
  const path = first?.path ? formatPath(first.path.map(pathKey)) : "";
  return path === "" ? `${what}: ${problem}` : `${what}: ${path}: ${problem}`;
}

function pathKey(segment: PropertyKey | { readonly key: PropertyKey }): PropertyKey {
  return typeof segment === "object" ? segment.key : segment;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

function truncate(text: string): string {
  return text.length <= MAX_PROBLEM_CHARS ? text : `${text.slice(0, MAX_PROBLEM_CHARS - 1)}…`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

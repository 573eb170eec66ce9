/** Test helpers for the wire-format schemas: fixtures, one-field edits, decode outcomes. */
import { Effect, Exit, Schema } from "effect";
import { decodeWith } from "./decode.ts";

const FIXTURES = new URL("../tests/fixtures/contracts/", import.meta.url);

/** Reads a JSON fixture under tests/fixtures/contracts/. */
export function fixture(relativePath: string): unknown {
  return JSON.parse(Deno.readTextFileSync(new URL(relativePath, FIXTURES)));
}

/** Reads a text fixture (e.g. a contract YAML) under tests/fixtures/contracts/. */
export function fixtureText(relativePath: string): string {
  return Deno.readTextFileSync(new URL(relativePath, FIXTURES));
}

type Path = ReadonlyArray<string | number>;

function toPath(path: string | Path): Path {
  return typeof path === "string"
    ? path.split(".").map((part) => (/^[0-9]+$/.test(part) ? Number(part) : part))
    : path;
}

function edit(
  doc: unknown,
  path: Path,
  change: (parent: Record<string, unknown>, key: string) => void,
) {
  const copy = structuredClone(doc);
  let node = copy as Record<string, unknown>;
  for (const key of path.slice(0, -1)) node = node[key as string] as Record<string, unknown>;
  change(node, String(path[path.length - 1]));
  return copy;
}

/** A deep copy of `doc` with the value at `path` (`"world_key.seed"`, `"locators.0.path"`) set. */
export function withValue(doc: unknown, path: string | Path, value: unknown): unknown {
  return edit(doc, toPath(path), (parent, key) => {
    parent[key] = value;
  });
}

/** A deep copy of `doc` without the key at `path`. */
export function withoutKey(doc: unknown, path: string | Path): unknown {
  return edit(doc, toPath(path), (parent, key) => {
    delete parent[key];
  });
}

/** Decodes as a boundary would; returns the value, or throws with the failure message. */
export function accepted<S extends Schema.Decoder<unknown>>(schema: S, input: unknown): S["Type"] {
  const exit = Effect.runSyncExit(decodeWith(schema, "PROFILE_INVALID", "input")(input));
  if (Exit.isSuccess(exit)) return exit.value;
  throw new Error(`Expected the input to be accepted: ${rejection(schema, input)}`);
}

/** Decodes as a boundary would and returns the failure message; throws if it was accepted. */
export function rejection<S extends Schema.Decoder<unknown>>(schema: S, input: unknown): string {
  const exit = Effect.runSyncExit(
    Effect.flip(decodeWith(schema, "PROFILE_INVALID", "input")(input)),
  );
  if (Exit.isSuccess(exit)) return exit.value.message;
  throw new Error(`Expected the input to be rejected: ${JSON.stringify(input)}`);
}

/** True when the schema accepts the input (with excess keys rejected, as at a boundary). */
export function isAccepted<S extends Schema.Decoder<unknown>>(schema: S, input: unknown): boolean {
  return Exit.isSuccess(Effect.runSyncExit(decodeWith(schema, "PROFILE_INVALID", "input")(input)));
}

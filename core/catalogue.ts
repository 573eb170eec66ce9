/**
 * The interface pack subset worldstream reads (profiles/interface_pack/): the output catalogue
 * and the gates map, with their digests, plus safe rendering of their path templates.
 */
import { Effect, Schema } from "effect";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe } from "../schemas/decode.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { sha256Hex } from "./hash.ts";

/** One output's catalogue entry (the fields worldstream uses; others are kept as read). */
export const OutputEntry = Schema.Struct({
  output_id: Schema.String,
  path_template: Schema.String,
  partitions: Schema.Array(Schema.String),
  schema_ref: Schema.String,
  primary_key: Schema.Array(Schema.String),
  read_requires_gates: Schema.Array(Schema.String),
});
export type OutputEntry = typeof OutputEntry.Type;

/**
 * How a gate's `_passed.flag` is checked against its validation bundle (the gates map's
 * `verification_method`; see stores/gate_verify.ts for each kind).
 */
export const VerificationMethod = Schema.Struct({
  kind: Schema.optionalKey(Schema.String),
  digest_field: Schema.optionalKey(Schema.String),
  ordering: Schema.optionalKey(Schema.String),
  exclude_filenames: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String))),
  path_base: Schema.optionalKey(Schema.String),
});
export type VerificationMethod = typeof VerificationMethod.Type;

/** One gate of the gates map. */
export const GateEntry = Schema.Struct({
  gate_id: Schema.String,
  passed_flag_path_template: Schema.String,
  bundle_root_template: Schema.String,
  index_path_template: Schema.optionalKey(Schema.String),
  verification_method: Schema.optionalKey(VerificationMethod),
});
export type GateEntry = typeof GateEntry.Type;

const CatalogueFile = Schema.Struct({ version: Schema.String, outputs: Schema.Array(OutputEntry) });
const GatesFile = Schema.Struct({ version: Schema.String, gates: Schema.Array(GateEntry) });

/** A JSON type a row schema allows for a column. */
export type JsonType = "string" | "integer" | "number" | "boolean" | "null";

/**
 * An output's row shape: its declared columns, which of them every row must have, the JSON
 * types each may hold ("null" among them when it may be null) and whether undeclared columns
 * are allowed.
 */
export interface RowShape {
  readonly columns: ReadonlyArray<string>;
  readonly required: ReadonlyArray<string>;
  readonly types: ReadonlyMap<string, ReadonlyArray<JsonType>>;
  readonly additionalProperties: boolean;
}

const JSON_TYPES: ReadonlySet<string> = new Set(["string", "integer", "number", "boolean", "null"]);

/**
 * The JSON type of each `$defs` entry the row schemas point at (schemas.layer1.yaml,
 * schemas.5B.yaml); the extracted subset does not carry the `$defs` themselves.
 */
export const DEF_TYPES: Readonly<Record<string, JsonType>> = {
  hex64: "string",
  id64: "integer",
  seed: "integer",
  scenario_id: "string",
  zone_representation: "string",
  rfc3339_micros: "string",
  iana_tzid: "string",
  local_wall_timestamp_micros: "string",
};

const PropertyNode = Schema.Struct({
  type: Schema.optionalKey(Schema.Union([Schema.String, Schema.Array(Schema.String)])),
  $ref: Schema.optionalKey(Schema.String),
  nullable: Schema.optionalKey(Schema.Boolean),
});

const RowSchemasFile = Schema.Struct({
  outputs: Schema.Record(
    Schema.String,
    Schema.Struct({
      additionalProperties: Schema.Boolean,
      required: Schema.optionalKey(Schema.Array(Schema.String)),
      properties: Schema.Record(Schema.String, PropertyNode),
    }),
  ),
});

/** The loaded pack: lookups by id and the sha256 digests of the two files as read. */
export interface InterfacePack {
  readonly outputs: ReadonlyMap<string, OutputEntry>;
  /** Row shapes from `row_schemas.yaml` (absent in a pack without it). */
  readonly rows: ReadonlyMap<string, RowShape>;
  readonly gates: ReadonlyMap<string, GateEntry>;
  readonly catalogueDigest: string;
  readonly gateMapDigest: string;
}

/** The world key that fills path templates. */
export interface WorldKey {
  readonly manifest_fingerprint: string;
  readonly parameter_hash: string;
  readonly seed: number;
  readonly scenario_id: string;
}

const DEFAULT_DIR = new URL("../profiles/interface_pack/", import.meta.url);
const PACK_FILES = ["engine_outputs.catalogue.yaml", "engine_gates.map.yaml", "row_schemas.yaml"];

/** The files {@link loadInterfacePack} reads from `dir` (default: the bundled subset). */
export function interfacePackPaths(dir?: string): ReadonlyArray<string> {
  const base = dir === undefined ? DEFAULT_DIR : new URL(`file://${dir.replace(/\/?$/, "/")}`);
  return PACK_FILES.map((name) => fileURLToPath(new URL(name, base)));
}

/** Loads and checks the catalogue and gates map from `dir` (default: the bundled subset). */
export const loadInterfacePack = Effect.fn("loadInterfacePack")(function* (dir?: string) {
  const base = dir === undefined ? DEFAULT_DIR : new URL(`file://${dir.replace(/\/?$/, "/")}`);
  const catalogueText = yield* readText(new URL("engine_outputs.catalogue.yaml", base));
  const gatesText = yield* readText(new URL("engine_gates.map.yaml", base));
  const catalogue = yield* decodeYaml(
    CatalogueFile,
    catalogueText,
    "engine_outputs.catalogue.yaml",
  );
  const gates = yield* decodeYaml(GatesFile, gatesText, "engine_gates.map.yaml");
  const rowsText = yield* readText(new URL("row_schemas.yaml", base)).pipe(
    Effect.catch(() => Effect.succeed(undefined)),
  );
  const rows = rowsText === undefined
    ? { outputs: {} }
    : yield* decodeYaml(RowSchemasFile, rowsText, "row_schemas.yaml");
  const shapes = new Map<string, RowShape>();
  for (const [id, r] of Object.entries(rows.outputs)) {
    const types = new Map<string, ReadonlyArray<JsonType>>();
    for (const [column, node] of Object.entries(r.properties)) {
      types.set(column, yield* jsonTypesOf(node, `${id}.${column}`));
    }
    const required = r.required ?? [];
    const undeclared = required.find((c) => !types.has(c));
    if (undeclared !== undefined) {
      return yield* fail(
        "INTERFACE_PACK_INVALID",
        `row_schemas.yaml: ${id} requires ${undeclared}, which it does not declare`,
      );
    }
    shapes.set(id, {
      columns: Object.keys(r.properties),
      required,
      types,
      additionalProperties: r.additionalProperties,
    });
  }
  return {
    rows: shapes,
    outputs: new Map(catalogue.outputs.map((o) => [o.output_id, o])),
    gates: new Map(gates.gates.map((g) => [g.gate_id, g])),
    catalogueDigest: sha256Hex(catalogueText),
    gateMapDigest: sha256Hex(gatesText),
  } satisfies InterfacePack;
});

const OUTPUT_ID = /^[A-Za-z0-9_]{1,128}$/;

/** The catalogue entry of `outputId`; ids that could escape a path are refused before lookup. */
export function outputEntry(
  pack: InterfacePack,
  outputId: string,
): Effect.Effect<OutputEntry, WorldstreamError> {
  if (!OUTPUT_ID.test(outputId)) {
    return Effect.fail(
      fail("OUTPUT_ID_INVALID", `Output id ${JSON.stringify(outputId)} is not a catalogue id`),
    );
  }
  const entry = pack.outputs.get(outputId);
  return entry === undefined
    ? Effect.fail(
      fail("NO_TRAFFIC_OUTPUTS", `Output id ${outputId} is not in the interface pack catalogue`),
    )
    : Effect.succeed(entry);
}

const HEX64 = /^[a-f0-9]{64}$/;
const SCENARIO_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}$/;

/** Checks that a world key's values are safe to put into a path (no `..`, `/`, quotes). */
export function checkWorldKey(key: WorldKey): Effect.Effect<WorldKey, WorldstreamError> {
  const bad = (field: string, value: unknown) =>
    Effect.fail(
      fail("WORLD_KEY_INVALID", `World key field ${field} is invalid: ${JSON.stringify(value)}`),
    );
  if (!HEX64.test(key.manifest_fingerprint)) {
    return bad("manifest_fingerprint", key.manifest_fingerprint);
  }
  if (!HEX64.test(key.parameter_hash)) return bad("parameter_hash", key.parameter_hash);
  if (!Number.isSafeInteger(key.seed) || key.seed < 0) return bad("seed", key.seed);
  if (!SCENARIO_ID.test(key.scenario_id) || key.scenario_id.includes("..")) {
    return bad("scenario_id", key.scenario_id);
  }
  return Effect.succeed(key);
}

/** Fills `{seed}`, `{parameter_hash}`, `{manifest_fingerprint}`, `{scenario_id}` in a template. */
export function renderTemplate(template: string, key: WorldKey): string {
  return template.replace(
    /\{(seed|parameter_hash|manifest_fingerprint|scenario_id)\}/g,
    (_, k) => String(key[k as keyof WorldKey]),
  );
}

// A property's JSON types: its `type` (one or a list) or its `$ref`'s, plus "null" when
// `nullable` (an OpenAPI keyword the engine schemas use).
function jsonTypesOf(
  node: typeof PropertyNode.Type,
  where: string,
): Effect.Effect<ReadonlyArray<JsonType>, WorldstreamError> {
  const invalid = (problem: string) =>
    Effect.fail(fail("INTERFACE_PACK_INVALID", `row_schemas.yaml: ${where} ${problem}`));
  let types: ReadonlyArray<string>;
  if (node.$ref !== undefined) {
    const name = /^#\/\$defs\/([A-Za-z0-9_]+)$/.exec(node.$ref)?.[1];
    if (name === undefined || !Object.hasOwn(DEF_TYPES, name)) {
      return invalid(`has an unknown $ref ${node.$ref}`);
    }
    types = [DEF_TYPES[name]];
  } else if (node.type !== undefined) {
    types = typeof node.type === "string" ? [node.type] : node.type;
    const unknown = types.find((t) => !JSON_TYPES.has(t));
    if (unknown !== undefined) return invalid(`has an unsupported type ${unknown}`);
  } else {
    return invalid("has no type and no $ref");
  }
  const all = node.nullable === true ? [...types, "null"] : types;
  return Effect.succeed([...new Set(all)] as ReadonlyArray<JsonType>);
}

function readText(url: URL): Effect.Effect<string, WorldstreamError> {
  return Effect.tryPromise({
    try: () => Deno.readTextFile(url),
    catch: (e) =>
      fail("INTERFACE_PACK_UNREADABLE", `Cannot read ${url.pathname}: ${(e as Error).message}`),
  });
}

function decodeYaml<S extends Schema.Top>(schema: S, text: string, what: string) {
  return Effect.try({
    try: () => parse(text) as unknown,
    catch: (e) => fail("INTERFACE_PACK_INVALID", `${what} is not YAML: ${(e as Error).message}`),
  }).pipe(
    Effect.flatMap((doc) => Schema.decodeUnknownEffect(schema)(doc)),
    Effect.mapError((e) =>
      e instanceof WorldstreamError
        ? e
        : fail("INTERFACE_PACK_INVALID", describe(`${what} is invalid`, e.issue))
    ),
  ) as Effect.Effect<S["Type"], WorldstreamError, S["DecodingServices"]>;
}

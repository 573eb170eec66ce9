/**
 * The gate's admission policy, compiled once from its data files: which event types it knows
 * (`ig/schema_policy_v0.yaml`), the class of each and the pins that class requires
 * (`ig/class_map_v0.yaml`), where an admitted event would be routed
 * (`ig/partitioning_profiles_v0.yaml`) and the row schema its payload must fit
 * (`interface_pack/row_schemas.yaml`, compiled to validators once).
 */
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import { Effect, Result, Schema, SchemaIssue } from "effect";
import { parse } from "yaml";
import { sha256Hex } from "../core/hash.ts";
import { formatPath } from "../schemas/decode.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";

/** The policy revision every receipt carries. */
export interface PolicyRev {
  readonly policy_id: string;
  readonly revision: string;
  /** sha256 of the policy files, in a fixed order. */
  readonly content_digest: string;
}

/** Where an admitted event of a class is routed (a platform partitioning profile). */
export interface PartitionProfile {
  readonly profileId: string;
  readonly stream: string;
  /** Envelope fields (`payload.x` for payload fields); the first present one is the key. */
  readonly keyPrecedence: ReadonlyArray<string>;
}

/** Everything the gate needs to judge one event type. */
export interface EventTypeRule {
  readonly eventType: string;
  readonly eventClass: string;
  readonly requiredPins: ReadonlyArray<string>;
  readonly schemaVersionRequired: boolean;
  readonly allowedSchemaVersions: ReadonlyArray<string> | undefined;
  /**
   * The first problem with a payload, or undefined when it fits the output's row schema. Absent
   * when the event type has no row schema here: its payload is not checked.
   */
  readonly checkPayload: ((payload: unknown) => PayloadProblem | undefined) | undefined;
  readonly partitioning: PartitionProfile;
}

/** What is wrong in a payload, and where (`path` inside the payload; empty for the whole). */
export interface PayloadProblem {
  readonly path: ReadonlyArray<string>;
  readonly message: string;
}

/** The compiled policy. */
export interface IgPolicy {
  readonly rules: ReadonlyMap<string, EventTypeRule>;
  readonly policyRev: PolicyRev;
}

/** Where the policy files are; each defaults to the copy bundled under `profiles/`. */
export interface IgPolicyFiles {
  readonly classMap?: string | URL;
  readonly schemaPolicy?: string | URL;
  readonly partitioning?: string | URL;
  readonly rowSchemas?: string | URL;
}

const PROFILES = new URL("../profiles/", import.meta.url);
const DEFAULT_FILES = {
  classMap: new URL("ig/class_map_v0.yaml", PROFILES),
  schemaPolicy: new URL("ig/schema_policy_v0.yaml", PROFILES),
  partitioning: new URL("ig/partitioning_profiles_v0.yaml", PROFILES),
  rowSchemas: new URL("interface_pack/row_schemas.yaml", PROFILES),
};

// ---------------------------------------------------------------------------------------------
// File formats

const ClassMapFile = Schema.Struct({
  version: Schema.String,
  classes: Schema.Record(
    Schema.String,
    Schema.Struct({ required_pins: Schema.Array(Schema.String) }),
  ),
  event_types: Schema.Record(Schema.String, Schema.String),
});

const SchemaPolicyFile = Schema.Struct({
  version: Schema.String,
  default_action: Schema.Literals(["quarantine"]),
  policies: Schema.Array(Schema.Struct({
    event_type: Schema.String,
    class: Schema.String,
    schema_version_required: Schema.Boolean,
    allowed_schema_versions: Schema.optionalKey(Schema.Array(Schema.String)),
    payload_schema_ref: Schema.optionalKey(Schema.String),
  })),
});

const PartitioningFile = Schema.Struct({
  version: Schema.String,
  profiles: Schema.Record(
    Schema.String,
    Schema.Struct({
      description: Schema.optionalKey(Schema.String),
      stream: Schema.String,
      key_precedence: Schema.Array(Schema.String),
      hash_algo: Schema.Literals(["sha256"]),
    }),
  ),
});

/** The JSON Schema keywords the row schemas use; any other keyword is refused at load. */
interface PropertyNode {
  readonly type?: string | ReadonlyArray<string>;
  readonly $ref?: string;
  readonly nullable?: boolean;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly pattern?: string;
  readonly description?: string;
}

const PropertyNodeSchema = Schema.Struct({
  type: Schema.optionalKey(Schema.Union([Schema.String, Schema.Array(Schema.String)])),
  $ref: Schema.optionalKey(Schema.String),
  nullable: Schema.optionalKey(Schema.Boolean),
  minimum: Schema.optionalKey(Schema.Number),
  maximum: Schema.optionalKey(Schema.Number),
  pattern: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
});

const RowSchemasFile = Schema.Struct({
  outputs: Schema.Record(
    Schema.String,
    Schema.Struct({
      schema_ref: Schema.String,
      additionalProperties: Schema.Boolean,
      required: Schema.Array(Schema.String),
      properties: Schema.Record(Schema.String, PropertyNodeSchema),
    }),
  ),
});

// The `$defs` the row schemas point at (schemas.layer1.yaml, schemas.5B.yaml), which the
// extracted subset does not carry.
const DEFS: Readonly<Record<string, PropertyNode>> = {
  hex64: { type: "string", pattern: "^[a-f0-9]{64}$" },
  id64: { type: "integer", minimum: 1, maximum: 18446744073709551615 },
  seed: { type: "integer", minimum: 0 },
  scenario_id: { type: "string" },
  zone_representation: { type: "string" },
  rfc3339_micros: {
    type: "string",
    pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
  },
  iana_tzid: { type: "string", pattern: "^[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*$" },
  local_wall_timestamp_micros: {
    type: "string",
    pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}$",
  },
};

// The platform routes each class with a fixed profile (its IG code, not a data file); classes
// it does not name use the traffic profile.
const PROFILE_BY_CLASS: Readonly<Record<string, string>> = {
  control: "ig.partitioning.v0.control",
  audit: "ig.partitioning.v0.audit",
  rtdl_decision: "ig.partitioning.v0.rtdl.decision",
  rtdl_action_intent: "ig.partitioning.v0.rtdl.action_intent",
  rtdl_action_outcome: "ig.partitioning.v0.rtdl.action_outcome",
  case_trigger: "ig.partitioning.v0.case.trigger",
  traffic_baseline: "ig.partitioning.v0.traffic.baseline",
  traffic_fraud: "ig.partitioning.v0.traffic.fraud",
  context_arrival: "ig.partitioning.v0.context.arrival_events",
  context_arrival_entities: "ig.partitioning.v0.context.arrival_entities",
  context_flow_baseline: "ig.partitioning.v0.context.flow_anchor.baseline",
  context_flow_fraud: "ig.partitioning.v0.context.flow_anchor.fraud",
};
const DEFAULT_PROFILE = "ig.partitioning.v0.traffic";

// ---------------------------------------------------------------------------------------------
// Loading

/** Loads and compiles the policy; any inconsistency between the files fails IG_POLICY_INVALID. */
export const loadIgPolicy = Effect.fn("loadIgPolicy")(function* (files: IgPolicyFiles = {}) {
  const paths = { ...DEFAULT_FILES, ...files };
  const texts = {
    classMap: yield* readText(paths.classMap),
    schemaPolicy: yield* readText(paths.schemaPolicy),
    partitioning: yield* readText(paths.partitioning),
    rowSchemas: yield* readText(paths.rowSchemas),
  };
  const classMap = yield* decodeYaml(ClassMapFile, texts.classMap, "class_map");
  const schemaPolicy = yield* decodeYaml(SchemaPolicyFile, texts.schemaPolicy, "schema_policy");
  const partitioning = yield* decodeYaml(PartitioningFile, texts.partitioning, "partitioning");
  const rowSchemas = yield* decodeYaml(RowSchemasFile, texts.rowSchemas, "row_schemas");

  const rules = new Map<string, EventTypeRule>();
  for (const entry of schemaPolicy.policies) {
    const mapped = classMap.event_types[entry.event_type];
    if (mapped !== undefined && mapped !== entry.class) {
      return yield* invalid(
        `Event type ${entry.event_type} is class ${entry.class} in schema_policy but ${mapped} ` +
          `in class_map`,
      );
    }
    const eventClass = classMap.classes[entry.class];
    if (eventClass === undefined) {
      return yield* invalid(`Event type ${entry.event_type} has unknown class ${entry.class}`);
    }
    const profileId = PROFILE_BY_CLASS[entry.class] ?? DEFAULT_PROFILE;
    const profile = partitioning.profiles[profileId];
    if (profile === undefined) {
      return yield* invalid(`Class ${entry.class} routes to unknown profile ${profileId}`);
    }
    const row = rowSchemas.outputs[entry.event_type];
    rules.set(entry.event_type, {
      eventType: entry.event_type,
      eventClass: entry.class,
      requiredPins: eventClass.required_pins,
      schemaVersionRequired: entry.schema_version_required,
      allowedSchemaVersions: entry.allowed_schema_versions,
      checkPayload: row === undefined ? undefined : yield* compileRow(entry.event_type, row),
      partitioning: {
        profileId,
        stream: profile.stream,
        keyPrecedence: profile.key_precedence,
      },
    });
  }
  const policyRev: PolicyRev = {
    policy_id: "ig_policy",
    revision: `schema_policy@${schemaPolicy.version}+class_map@${classMap.version}`,
    content_digest: sha256Hex(
      [texts.schemaPolicy, texts.classMap, texts.partitioning, texts.rowSchemas].join("\n"),
    ),
  };
  return { rules, policyRev } satisfies IgPolicy;
});

// ---------------------------------------------------------------------------------------------
// Row schemas → compiled validators

type RowSchema = typeof RowSchemasFile.Type["outputs"][string];

// Row schemas are JSON Schema, so a JSON Schema compiler (ajv, draft 2020-12) turns each into
// straight-line code once: checking a payload costs well under a microsecond.
const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });

function compileRow(
  eventType: string,
  row: RowSchema,
): Effect.Effect<(payload: unknown) => PayloadProblem | undefined, WorldstreamError> {
  return Effect.gen(function* () {
    const properties: Record<string, unknown> = {};
    for (const [name, node] of Object.entries(row.properties)) {
      properties[name] = yield* jsonSchemaOf(node, `${eventType}.${name}`);
    }
    const validate = yield* Effect.try({
      try: () =>
        ajv.compile({
          type: "object",
          additionalProperties: row.additionalProperties,
          required: row.required,
          properties,
        }),
      catch: (e) => fail("IG_POLICY_INVALID", `${eventType}: row schema does not compile: ${e}`),
    });
    return (payload: unknown) =>
      validate(payload) ? undefined : describeAjvError(validate.errors?.[0]);
  });
}

// One property as plain JSON Schema: `$ref`s to the layer `$defs` inlined, `nullable` (an
// OpenAPI keyword the engine schemas use) as a union with null.
function jsonSchemaOf(node: PropertyNode, where: string): Effect.Effect<unknown, WorldstreamError> {
  return Effect.gen(function* () {
    let schema: Record<string, unknown>;
    if (node.$ref !== undefined) {
      const name = /^#\/\$defs\/([A-Za-z0-9_]+)$/.exec(node.$ref)?.[1];
      const def = name === undefined ? undefined : DEFS[name];
      if (def === undefined) return yield* invalid(`${where}: unknown $ref ${node.$ref}`);
      schema = (yield* jsonSchemaOf(def, where)) as Record<string, unknown>;
    } else if (node.type === undefined) {
      return yield* invalid(`${where}: no type and no $ref`);
    } else {
      const types = typeof node.type === "string" ? [node.type] : node.type;
      const unsupported = types.find((t) => !SUPPORTED_TYPES.has(t));
      if (unsupported !== undefined) {
        return yield* invalid(`${where}: unsupported type ${unsupported}`);
      }
      schema = { type: types.length === 1 ? types[0] : [...types] };
      if (node.minimum !== undefined) schema.minimum = node.minimum;
      if (node.maximum !== undefined) schema.maximum = node.maximum;
      if (node.pattern !== undefined) schema.pattern = node.pattern;
    }
    return node.nullable === true ? { anyOf: [schema, { type: "null" }] } : schema;
  });
}

const SUPPORTED_TYPES = new Set(["string", "integer", "number", "boolean", "null"]);

// The first ajv error, in the words decode.ts uses.
function describeAjvError(error: ErrorObject | undefined): PayloadProblem {
  if (error === undefined) return { path: [], message: "Invalid value" };
  const path = error.instancePath.split("/").slice(1).map((s) =>
    s.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const params = error.params as { additionalProperty?: string; missingProperty?: string };
  if (error.keyword === "additionalProperties" && params.additionalProperty !== undefined) {
    return {
      path: [...path, params.additionalProperty],
      message: "Unexpected key (the format does not allow extra keys)",
    };
  }
  if (error.keyword === "required" && params.missingProperty !== undefined) {
    return { path: [...path, params.missingProperty], message: "Missing required key" };
  }
  return { path, message: error.message ?? "is invalid" };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** Parse options of every gate decode: extra keys are an error unless a schema has a rest. */
export const STRICT = { onExcessProperty: "error" } as const;

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

/** The first problem of a decode failure as `field.path: problem` (one line, bounded). */
export function describeIssue(issue: SchemaIssue.Issue): string {
  const first = formatter(issue).issues[0];
  const problem = (first?.message ?? "Invalid value").replace(/\s*\n\s*/g, " ").slice(0, 240);
  const path = first?.path
    ? formatPath(first.path.map((s) => (typeof s === "object" ? s.key : s)))
    : "";
  return path === "" ? problem : `${path}: ${problem}`;
}

function readText(path: string | URL): Effect.Effect<string, WorldstreamError> {
  return Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) => fail("IG_POLICY_INVALID", `Cannot read ${path}: ${(e as Error).message}`),
  });
}

function decodeYaml<S extends Schema.Decoder<unknown>>(
  schema: S,
  text: string,
  what: string,
): Effect.Effect<S["Type"], WorldstreamError> {
  return Effect.try({
    try: () => parse(text) as unknown,
    catch: (e) => fail("IG_POLICY_INVALID", `${what} is not YAML: ${(e as Error).message}`),
  }).pipe(
    Effect.flatMap((doc) => {
      const result = Schema.decodeUnknownResult(schema)(doc, STRICT);
      return Result.isSuccess(result)
        ? Effect.succeed(result.success)
        : Effect.fail(fail("IG_POLICY_INVALID", `${what}: ${describeIssue(result.failure.issue)}`));
    }),
  );
}

function invalid(message: string): Effect.Effect<never, WorldstreamError> {
  return Effect.fail(fail("IG_POLICY_INVALID", message));
}

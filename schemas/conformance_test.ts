/**
 * Each wire-format schema against the platform's own JSON Schema file: a reference validator
 * (ajv, draft 2020-12) and our decode must agree on the complete example and on every one-field
 * variant of it (each value swapped for each probe below, each key removed, an extra key added
 * to each object).
 *
 * Formats are annotations (not checked) except for the envelope, which we produce and so read
 * strictly: there `uuid` is asserted. Its `date-time` is left to the rfc3339_micros pattern
 * here; that a timestamp's date exists is covered in common_test.ts.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { Exit, Schema } from "effect";
import { CanonicalEventEnvelope } from "./envelope.ts";
import { OraclePackManifest, OraclePackSeal } from "./oracle_pack.ts";
import { RunReadySignal } from "./ready.ts";
import { RunFactsView } from "./run_facts.ts";
import { RunReceipt } from "./run_receipt.ts";
import { fixture, fixtureText, isAccepted, withoutKey, withValue } from "./_testing.ts";

const LAYER1_REF = "../layer-1/specs/contracts/1A/schemas.layer1.yaml#/$defs/";
const layer1Defs = parse(fixtureText("interface_pack/schemas.layer1.defs.yaml")).$defs;

// The envelope and run receipt point at layer-1 definitions by a path outside the pack.
function inlineLayer1(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(inlineLayer1);
  if (node === null || typeof node !== "object") return node;
  const ref = (node as { $ref?: unknown }).$ref;
  if (typeof ref === "string" && ref.startsWith(LAYER1_REF)) {
    return layer1Defs[ref.slice(LAYER1_REF.length)];
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inlineLayer1(v)]));
}

const UUID = /^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/i;

function referenceValidator(contractPath: string): (input: unknown) => boolean {
  const assertFormats = contractPath.endsWith("canonical_event_envelope.schema.yaml");
  const ajv = new Ajv2020({
    strict: false,
    validateFormats: assertFormats,
    formats: { uuid: UUID, "date-time": true },
  });
  const validate = ajv.compile(inlineLayer1(parse(fixtureText(contractPath))) as object);
  return (input) => validate(input) === true;
}

const HEX64 = "0123456789abcdef".repeat(4);
const PROBES: ReadonlyArray<unknown> = [
  null,
  true,
  0,
  -1,
  1.5,
  7,
  2 ** 53,
  1e20,
  "",
  "x",
  HEX64.slice(0, 32),
  HEX64.slice(0, 32).toUpperCase(),
  HEX64,
  HEX64.toUpperCase(),
  HEX64.slice(1),
  `${HEX64}\n`,
  "x".repeat(65),
  "x".repeat(129),
  "x".repeat(257),
  "x".repeat(2049),
  "😀".repeat(64),
  "😀".repeat(256),
  "😀".repeat(257),
  "2026-01-02T10:15:30.123456Z",
  "2026-01-02T10:15:30.12345Z",
  "2026-01-02T10:15:30.123456",
  "platform_20260102T101530Z",
  "platform_20260102T101530",
  "550e8400-e29b-41d4-a716-446655440000",
  "PASS",
  "pass",
  "sha256",
  "SEALED_FAILED",
  "instance_proof",
  "json_receipt",
  "gate.id-1_x",
  "gate id",
  [],
  ["x"],
  [""],
  [1],
  {},
  { x: "y" },
  { x: "" },
  { x: 1 },
];

type Path = Array<string | number>;

function nodePaths(node: unknown, path: Path = []): Array<{ path: Path; isObject: boolean }> {
  const here = {
    path,
    isObject: node !== null && typeof node === "object" && !Array.isArray(node),
  };
  if (Array.isArray(node)) {
    return [here, ...node.flatMap((child, i) => nodePaths(child, [...path, i]))];
  }
  if (here.isObject) {
    return [
      here,
      ...Object.entries(node as object).flatMap(([k, v]) => nodePaths(v, [...path, k])),
    ];
  }
  return [here];
}

function variants(doc: unknown): Array<{ what: string; input: unknown }> {
  const out: Array<{ what: string; input: unknown }> = [{ what: "the example", input: doc }];
  for (const { path, isObject } of nodePaths(doc)) {
    const where = path.join(".") || "(root)";
    for (const probe of PROBES) {
      out.push({
        what: `${where} = ${JSON.stringify(probe).slice(0, 40)}`,
        input: path.length === 0 ? probe : withValue(doc, path, probe),
      });
    }
    if (path.length > 0 && typeof path[path.length - 1] === "string") {
      out.push({ what: `without ${where}`, input: withoutKey(doc, path) });
    }
    if (isObject) {
      out.push({ what: `${where} + extra key`, input: withValue(doc, [...path, "zz_extra"], 1) });
    }
  }
  return out;
}

function assertAgreement(
  contractPath: string,
  schema: Schema.Decoder<unknown>,
  doc: unknown,
) {
  const reference = referenceValidator(contractPath);
  assert.equal(reference(doc), true, "the reference validator rejects the example");
  // The same decode and options as decodeWith, without building an error message per case.
  const decode = Schema.decodeUnknownExit(schema);
  const accepts = (input: unknown) => Exit.isSuccess(decode(input, { onExcessProperty: "error" }));
  assert.equal(accepts(doc), isAccepted(schema, doc));
  const disagreements: Array<string> = [];
  let rejected = 0;
  const cases = variants(doc);
  for (const { what, input } of cases) {
    const expected = reference(input);
    if (!expected) rejected++;
    if (accepts(input) !== expected) {
      disagreements.push(`${what}: contract ${expected ? "accepts" : "rejects"}, schema does not`);
    }
  }
  assert.deepEqual(disagreements.slice(0, 10), []);
  assert.ok(rejected > cases.length / 2, `only ${rejected} of ${cases.length} variants rejected`);
}

const fullEnvelope = {
  ...(fixture("interface_pack/examples/canonical_event.example.json") as object),
  platform_run_id: "platform_20260102T101530Z",
  scenario_run_id: HEX64.slice(0, 32),
  parent_event_id: HEX64,
};

Deno.test("the envelope schema accepts exactly what the platform's envelope contract does", () => {
  assertAgreement(
    "interface_pack/canonical_event_envelope.schema.yaml",
    CanonicalEventEnvelope,
    fullEnvelope,
  );
  assertAgreement(
    "interface_pack/canonical_event_envelope.schema.yaml",
    CanonicalEventEnvelope,
    { ...fullEnvelope, scenario_id: 42 },
  );
});

Deno.test("the READY schema accepts exactly what the platform's READY contract does", () => {
  assertAgreement(
    "platform/run_ready_signal.schema.yaml",
    RunReadySignal,
    fixture("worldstream/ready.json"),
  );
});

Deno.test("the run facts schema accepts exactly what the platform's facts contract does", () => {
  assertAgreement(
    "platform/run_facts_view.schema.yaml",
    RunFactsView,
    fixture("worldstream/run_facts_view.json"),
  );
});

Deno.test("the run receipt schema accepts exactly what the platform's receipt contract does", () => {
  assertAgreement(
    "interface_pack/run_receipt.schema.yaml",
    RunReceipt,
    fixture("worldstream/run_receipt.json"),
  );
});

Deno.test("the oracle pack schemas accept exactly what the platform's pack contracts do", () => {
  assertAgreement(
    "platform/oracle_pack_manifest.schema.yaml",
    OraclePackManifest,
    fixture("worldstream/oracle_pack_manifest.json"),
  );
  assertAgreement(
    "platform/oracle_pack_seal.schema.yaml",
    OraclePackSeal,
    fixture("worldstream/oracle_pack_seal.json"),
  );
});

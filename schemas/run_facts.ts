/**
 * The Scenario Runner's run facts view (`platform/run_facts_view.schema.yaml`): a run's pins,
 * output locators and gate/instance receipts, which READY's `facts_view_ref` points at.
 *
 * Quirk kept on purpose: in this file `rfc3339_micros` is only `minLength: 1` and `uint64` has
 * no upper bound, unlike the layer-1 definitions the envelope uses.
 */
import { Schema } from "effect";
import {
  boundedString,
  Hex32,
  Hex64,
  NonEmptyString,
  NonNegativeInt,
  PlatformRunId,
} from "./common.ts";
import { OraclePackRef, Provenance } from "./ready.ts";

const FactsTimestamp = NonEmptyString;
const NonEmptyPath = boundedString(1, 2048);
const Notes = boundedString(0, 2048);
const SafeId = boundedString(1, 128).check(
  Schema.isPattern(/^[A-Za-z0-9_.-]+$/, { expected: "letters, digits, '_', '.' or '-'" }),
);

/** A content digest (`$defs/digest`): `{algo: "sha256", hex}`. */
export const Digest = Schema.Struct({
  algo: Schema.Literals(["sha256"]),
  hex: Hex64,
});
export type Digest = typeof Digest.Type;

/** The identity scope a gate or instance receipt applies to (`$defs/gate_scope`). */
export const GateScope = Schema.Struct({
  manifest_fingerprint: Hex64,
  parameter_hash: Schema.optionalKey(Hex64),
  seed: Schema.optionalKey(NonNegativeInt),
  scenario_id: Schema.optionalKey(boundedString(1, 256)),
  run_id: Schema.optionalKey(Hex32),
});
export type GateScope = typeof GateScope.Type;

/** The world identity every run is pinned to. */
export const RunPins = Schema.Struct({
  manifest_fingerprint: Hex64,
  parameter_hash: Hex64,
  seed: NonNegativeInt,
  scenario_id: NonEmptyString,
  run_id: Hex32,
  platform_run_id: PlatformRunId,
  scenario_run_id: Hex32,
});
export type RunPins = typeof RunPins.Type;

/** Where one engine output lives (a `locators` item, and an instance receipt's `target_ref`). */
export const OutputLocator = Schema.Struct({
  output_id: NonEmptyString,
  path: NonEmptyString,
  manifest_fingerprint: Schema.optionalKey(Hex64),
  parameter_hash: Schema.optionalKey(Hex64),
  seed: Schema.optionalKey(NonNegativeInt),
  scenario_id: Schema.optionalKey(NonEmptyString),
  run_id: Schema.optionalKey(Hex32),
  schema_ref: Schema.optionalKey(NonEmptyString),
  dictionary_ref: Schema.optionalKey(NonEmptyString),
  produced_at_utc: Schema.optionalKey(FactsTimestamp),
  content_digest: Schema.optionalKey(Digest),
});
export type OutputLocator = typeof OutputLocator.Type;

/** A gate's PASS/FAIL outcome for a scope. */
export const GateReceipt = Schema.Struct({
  gate_id: SafeId,
  status: Schema.Literals(["PASS", "FAIL"]),
  scope: GateScope,
  produced_at_utc: Schema.optionalKey(FactsTimestamp),
  receipt_kind: Schema.optionalKey(Schema.Literals(["passed_flag", "json_receipt", "bundle_flag"])),
  digest: Schema.optionalKey(Digest),
  artifacts: Schema.optionalKey(Schema.Struct({
    validation_bundle_root: Schema.optionalKey(NonEmptyPath),
    index_path: Schema.optionalKey(NonEmptyPath),
    passed_flag_path: Schema.optionalKey(NonEmptyPath),
  })),
  notes: Schema.optionalKey(Notes),
});
export type GateReceipt = typeof GateReceipt.Type;

/** Proof that one output instance was checked. */
export const InstanceReceipt = Schema.Struct({
  output_id: SafeId,
  status: Schema.Literals(["PASS", "FAIL"]),
  scope: GateScope,
  target_ref: OutputLocator,
  target_digest: Digest,
  bundle_manifest_ref: Schema.optionalKey(NonEmptyPath),
  receipt_kind: Schema.optionalKey(Schema.Literals(["instance_proof"])),
  artifacts: Schema.optionalKey(Schema.Struct({
    receipt_path: Schema.optionalKey(NonEmptyPath),
  })),
  notes: Schema.optionalKey(Notes),
});
export type InstanceReceipt = typeof InstanceReceipt.Type;

/** The policy revision a run was planned under. */
export const PolicyRev = Schema.Struct({
  policy_id: Schema.String,
  revision: Schema.String,
  content_digest: Hex64,
});
export type PolicyRev = typeof PolicyRev.Type;

/** The run facts view a READY signal points at. */
export const RunFactsView = Schema.Struct({
  run_id: Hex32,
  platform_run_id: PlatformRunId,
  scenario_run_id: Hex32,
  pins: RunPins,
  locators: Schema.Array(OutputLocator),
  output_roles: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  intended_outputs: Schema.optionalKey(Schema.Array(NonEmptyString)),
  gate_receipts: Schema.Array(GateReceipt),
  instance_receipts: Schema.optionalKey(Schema.Array(InstanceReceipt)),
  policy_rev: PolicyRev,
  bundle_hash: Hex64,
  plan_ref: NonEmptyString,
  record_ref: NonEmptyString,
  status_ref: NonEmptyString,
  run_config_digest: Schema.optionalKey(Hex64),
  service_release_id: Schema.optionalKey(boundedString(1, 256)),
  environment: Schema.optionalKey(boundedString(1, 64)),
  provenance: Schema.optionalKey(Provenance),
  oracle_pack_ref: Schema.optionalKey(OraclePackRef),
  evidence_notes: Schema.optionalKey(Schema.Array(NonEmptyString)),
});
export type RunFactsView = typeof RunFactsView.Type;

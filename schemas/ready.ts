/**
 * The Scenario Runner's READY signal (`platform/run_ready_signal.schema.yaml`), the payload of a
 * control-bus message, plus the two sub-objects it shares with the run facts view.
 */
import { Schema } from "effect";
import { boundedString, Hex32, Hex64, NonEmptyString, PlatformRunId } from "./common.ts";

const Ref = boundedString(1, 2048);

/**
 * Where an oracle pack and its stream views live (`$defs/oracle_pack_ref`): every key optional,
 * at least one present.
 */
export const OraclePackRef = Schema.Struct({
  oracle_pack_id: Schema.optionalKey(Hex64),
  manifest_ref: Schema.optionalKey(Ref),
  engine_run_root: Schema.optionalKey(Ref),
  scenario_id: Schema.optionalKey(boundedString(1, 256)),
  stream_view_root: Schema.optionalKey(Ref),
  stream_view_output_refs: Schema.optionalKey(Schema.Record(Schema.String, Ref)),
  oracle_root: Schema.optionalKey(Ref),
  engine_release: Schema.optionalKey(boundedString(1, 256)),
}).check(Schema.isMinProperties(1, { expected: "an object with at least one key" }));
export type OraclePackRef = typeof OraclePackRef.Type;

/** Which service release and environment produced a signal or view. */
export const Provenance = Schema.Struct({
  service_release_id: boundedString(1, 256),
  environment: boundedString(1, 64),
  config_revision: Schema.optionalKey(boundedString(1, 128)),
  run_config_digest: Schema.optionalKey(Hex64),
});
export type Provenance = typeof Provenance.Type;

/** READY: a scenario run's facts are published and its world may be streamed. */
export const RunReadySignal = Schema.Struct({
  run_id: Hex32,
  platform_run_id: PlatformRunId,
  scenario_run_id: Hex32,
  facts_view_ref: NonEmptyString,
  bundle_hash: Hex64,
  plan_hash: Schema.optionalKey(Hex64),
  message_id: Hex64,
  run_config_digest: Hex64,
  service_release_id: Schema.optionalKey(boundedString(1, 256)),
  environment: Schema.optionalKey(boundedString(1, 64)),
  provenance: Schema.optionalKey(Provenance),
  manifest_fingerprint: Hex64,
  parameter_hash: Hex64,
  scenario_id: NonEmptyString,
  // `format: date-time` only; the contract does not assert formats.
  emitted_at_utc: Schema.optionalKey(Schema.String),
  oracle_pack_ref: Schema.optionalKey(OraclePackRef),
});
export type RunReadySignal = typeof RunReadySignal.Type;

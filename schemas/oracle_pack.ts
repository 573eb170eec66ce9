/**
 * The oracle pack's manifest (`platform/oracle_pack_manifest.schema.yaml`,
 * `_oracle_pack_manifest.json`) and seal (`platform/oracle_pack_seal.schema.yaml`, `_SEALED.json`)
 * at an engine run root: which world the pack holds, and whether it was sealed.
 */
import { Schema } from "effect";
import { boundedString, Hex64, NonEmptyString, NonNegativeInt } from "./common.ts";

/** The world a pack (or stream view) was built from. */
export const WorldKey = Schema.Struct({
  manifest_fingerprint: Hex64,
  parameter_hash: Hex64,
  scenario_id: boundedString(1, 256),
  seed: NonNegativeInt,
});
export type WorldKey = typeof WorldKey.Type;

/** `_oracle_pack_manifest.json`: the pack id and the world, release and digests behind it. */
export const OraclePackManifest = Schema.Struct({
  version: Schema.String,
  oracle_pack_id: Hex64,
  world_key: WorldKey,
  engine_release: Schema.String,
  catalogue_digest: Hex64,
  gate_map_digest: Hex64,
  created_at_utc: NonEmptyString,
});
export type OraclePackManifest = typeof OraclePackManifest.Type;

/** The two seal outcomes. */
export const SealStatus = Schema.Literals(["SEALED_OK", "SEALED_FAILED"]);
export type SealStatus = typeof SealStatus.Type;

/** `_SEALED.json`: the pack's seal. */
export const OraclePackSeal = Schema.Struct({
  version: Schema.String,
  oracle_pack_id: Hex64,
  seal_status: SealStatus,
  sealed_at_utc: NonEmptyString,
});
export type OraclePackSeal = typeof OraclePackSeal.Type;

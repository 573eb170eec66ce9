/**
 * The data engine's run receipt (`interface_pack/run_receipt.schema.yaml`, `run_receipt.json` at
 * an engine run root): the world identity of a run. The format is open
 * (`additionalProperties: true`), so keys beyond the listed ones are kept as read.
 */
import { Schema } from "effect";
import { Hex32, Hex64, JsonObject, Uint64 } from "./common.ts";

/** An engine run's identity receipt; extra engine metadata is allowed and kept. */
export const RunReceipt = Schema.StructWithRest(
  Schema.Struct({
    run_id: Hex32,
    manifest_fingerprint: Hex64,
    parameter_hash: Hex64,
    seed: Uint64,
    // `format: date-time` only; the contract does not assert formats.
    created_utc: Schema.optionalKey(Schema.String),
    contracts_layout: Schema.optionalKey(Schema.String),
    contracts_root: Schema.optionalKey(Schema.String),
    runs_root: Schema.optionalKey(Schema.String),
    external_roots: Schema.optionalKey(Schema.Array(Schema.String)),
  }),
  [JsonObject],
);
export type RunReceipt = typeof RunReceipt.Type;

/**
 * The canonical event envelope (`interface_pack/canonical_event_envelope.schema.yaml`): the
 * closed header every event carries to the ingestion gate, with the producer-defined body
 * isolated under an open `payload` object.
 */
import { Schema } from "effect";
import {
  boundedString,
  Hex32,
  Hex64,
  JsonObject,
  NonNegativeInt,
  PlatformRunId,
  Rfc3339Micros,
  Uint64,
} from "./common.ts";

/**
 * Event id (`$defs/event_id`): a UUID, a hex64, a hex32 or any 1–256 char string. Read with
 * `format: uuid` asserted, the last branch of the anyOf contains the others. (Were formats
 * ignored, the uuid branch would admit any string, even "", which the gate may refuse; as the
 * producer of envelopes we take the strict reading.)
 */
export const EventId = boundedString(1, 256);
export type EventId = typeof EventId.Type;

/** Envelope scenario id (`$defs/scenario_id`): a 1–256 char string or an integer >= 0. */
export const EnvelopeScenarioId = Schema.Union([boundedString(1, 256), NonNegativeInt]);
export type EnvelopeScenarioId = typeof EnvelopeScenarioId.Type;

/** One event as pushed to the ingestion gate (`additionalProperties: false`). */
export const CanonicalEventEnvelope = Schema.Struct({
  event_id: EventId,
  event_type: boundedString(1, 256),
  ts_utc: Rfc3339Micros,
  manifest_fingerprint: Hex64,
  parameter_hash: Schema.optionalKey(Hex64),
  seed: Schema.optionalKey(Uint64),
  scenario_id: Schema.optionalKey(EnvelopeScenarioId),
  run_id: Schema.optionalKey(Hex32),
  platform_run_id: Schema.optionalKey(PlatformRunId),
  scenario_run_id: Schema.optionalKey(Hex32),
  emitted_at_utc: Schema.optionalKey(Rfc3339Micros),
  schema_version: Schema.optionalKey(boundedString(1, 64)),
  trace_id: Schema.optionalKey(boundedString(1, 128)),
  span_id: Schema.optionalKey(boundedString(1, 128)),
  parent_event_id: Schema.optionalKey(EventId),
  producer: Schema.optionalKey(boundedString(1, 128)),
  payload: Schema.optionalKey(JsonObject),
});
export type CanonicalEventEnvelope = typeof CanonicalEventEnvelope.Type;

/**
 * The control-bus envelope (no schema file; the platform's format, see CONTRACTS.md):
 * `{topic, message_id, published_at_utc, attributes: {kind, run_id}, partition_key, payload}`,
 * one JSON file per message on the file bus, the same JSON as Kinesis record data.
 *
 * Reading mirrors the platform's readers, which only require a topic and a message id and
 * validate the payload as READY after filtering on topic: {@link ControlBusEnvelope} leaves the
 * payload unknown so other topics can be skipped before it is looked at. Writing uses the full
 * shape, {@link ReadyControlMessage}.
 */
import { Schema } from "effect";
import { Hex64, JsonObject, NonEmptyString } from "./common.ts";
import { RunReadySignal } from "./ready.ts";

/** The control topic READY signals are published on. */
export const CONTROL_BUS_TOPIC = "fp.bus.control.v1";

/** Envelope attributes: `kind` and `run_id` when present; other attributes are kept. */
export const ControlBusAttributes = Schema.StructWithRest(
  Schema.Struct({
    kind: Schema.optionalKey(Schema.String),
    run_id: Schema.optionalKey(Schema.String),
  }),
  [JsonObject],
);
export type ControlBusAttributes = typeof ControlBusAttributes.Type;

/** Any control-bus message as read; extra envelope keys are kept, the payload is not decoded. */
export const ControlBusEnvelope = Schema.StructWithRest(
  Schema.Struct({
    topic: NonEmptyString,
    message_id: NonEmptyString,
    published_at_utc: Schema.optionalKey(Schema.String),
    attributes: Schema.optionalKey(ControlBusAttributes),
    partition_key: Schema.optionalKey(Schema.String),
    payload: Schema.Unknown,
  }),
  [JsonObject],
);
export type ControlBusEnvelope = typeof ControlBusEnvelope.Type;

/** A complete READY message as published: every envelope key, READY as the payload. */
export const ReadyControlMessage = Schema.Struct({
  topic: Schema.Literal(CONTROL_BUS_TOPIC),
  message_id: Hex64,
  published_at_utc: NonEmptyString,
  attributes: Schema.Struct({ kind: Schema.Literal("READY"), run_id: NonEmptyString }),
  partition_key: NonEmptyString,
  payload: RunReadySignal,
});
export type ReadyControlMessage = typeof ReadyControlMessage.Type;

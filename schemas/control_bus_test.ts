import assert from "node:assert/strict";
import { CONTROL_BUS_TOPIC, ControlBusEnvelope, ReadyControlMessage } from "./control_bus.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const message = fixture("worldstream/control_bus_ready.json");

Deno.test("a complete READY message is accepted with its READY payload decoded", () => {
  const decoded = accepted(ReadyControlMessage, message);
  assert.equal(decoded.topic, CONTROL_BUS_TOPIC);
  assert.equal(decoded.payload.message_id, decoded.message_id);
  assert.deepEqual(decoded.attributes, { kind: "READY", run_id: "platform_20260102T101530Z" });
});

Deno.test("a READY message with a bad READY payload names the payload field", () => {
  assert.match(
    rejection(ReadyControlMessage, withValue(message, "payload.bundle_hash", "nope")),
    /^input: payload\.bundle_hash: Expected a 64-char lowercase hex/,
  );
  assert.match(
    rejection(ReadyControlMessage, withValue(message, "attributes.kind", "STATUS")),
    /^input: attributes\.kind: Expected "READY"/,
  );
});

Deno.test("an envelope on another topic is read without looking at its payload", () => {
  const other = withValue(withValue(message, "topic", "fp.bus.other.v1"), "payload", "opaque");
  const envelope = accepted(ControlBusEnvelope, other);
  assert.notEqual(envelope.topic, CONTROL_BUS_TOPIC);
  assert.equal(envelope.payload, "opaque");
});

Deno.test("the platform's minimal envelope shape is readable", () => {
  const minimal = {
    topic: CONTROL_BUS_TOPIC,
    message_id: "msg-1",
    published_at_utc: "2026-01-01T00:00:00.000000Z",
    attributes: {},
    partition_key: "b".repeat(32),
    payload: { run_id: "b".repeat(32) },
  };
  assert.equal(isAccepted(ControlBusEnvelope, minimal), true);
  assert.equal(isAccepted(ControlBusEnvelope, { ...minimal, trace: { id: 1 } }), true);
});

Deno.test("an envelope without a topic or message id is rejected", () => {
  assert.equal(
    rejection(ControlBusEnvelope, withoutKey(message, "topic")),
    "input: topic: Missing required key",
  );
  assert.match(
    rejection(ControlBusEnvelope, withValue(message, "message_id", "")),
    /^input: message_id: /,
  );
});

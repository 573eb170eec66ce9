import assert from "node:assert/strict";
import { CanonicalEventEnvelope } from "./envelope.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const example = fixture("interface_pack/examples/canonical_event.example.json");
const HEX64 = "ab".repeat(32);

Deno.test("the platform's example event, with a UUID event id, is accepted", () => {
  const event = accepted(CanonicalEventEnvelope, example);
  assert.equal(event.event_id, "550e8400-e29b-41d4-a716-446655440000");
  assert.deepEqual(event.payload, {
    merchant_id: "m_00001234",
    site_id: 100001,
    amount_minor: 2599,
    currency: "GBP",
  });
});

Deno.test("event ids may be hex digests or any 1 to 256 char string", () => {
  for (const id of [HEX64, HEX64.slice(0, 32), "evt-1", "x".repeat(256)]) {
    assert.equal(isAccepted(CanonicalEventEnvelope, withValue(example, "event_id", id)), true, id);
  }
  assert.equal(isAccepted(CanonicalEventEnvelope, withValue(example, "event_id", "")), false);
  assert.equal(
    isAccepted(CanonicalEventEnvelope, withValue(example, "event_id", "x".repeat(257))),
    false,
  );
});

Deno.test("a bad or uppercase manifest fingerprint is rejected", () => {
  assert.equal(
    rejection(CanonicalEventEnvelope, withValue(example, "manifest_fingerprint", "XYZ")),
    `input: manifest_fingerprint: Expected a 64-char lowercase hex string, got "XYZ"`,
  );
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "parameter_hash", HEX64.toUpperCase())),
    /^input: parameter_hash: Expected a 64-char lowercase hex/,
  );
});

Deno.test("timestamps need six fractional digits and a Z", () => {
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "ts_utc", "2026-01-02T10:15:30.12345Z")),
    /^input: ts_utc: Expected a UTC timestamp .* exactly 6 fractional digits/,
  );
  assert.match(
    rejection(
      CanonicalEventEnvelope,
      withValue(example, "emitted_at_utc", "2026-01-02T10:15:30.123456"),
    ),
    /^input: emitted_at_utc: /,
  );
});

Deno.test("the envelope is closed but its payload is open", () => {
  assert.equal(
    rejection(CanonicalEventEnvelope, withValue(example, "amount", 1)),
    "input: amount: Unexpected key (the format does not allow extra keys)",
  );
  const event = accepted(CanonicalEventEnvelope, withValue(example, "payload.nested", { a: [1] }));
  assert.deepEqual(event.payload?.nested, { a: [1] });
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "payload", [1, 2])),
    /^input: payload: Expected object/,
  );
});

Deno.test("the seed must be a non-negative integer", () => {
  assert.match(rejection(CanonicalEventEnvelope, withValue(example, "seed", -1)), /^input: seed: /);
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "seed", 1.5)),
    /^input: seed: /,
  );
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "seed", "1")),
    /^input: seed: /,
  );
});

Deno.test("a malformed platform run id is rejected", () => {
  assert.match(
    rejection(CanonicalEventEnvelope, withValue(example, "platform_run_id", "platform_2026")),
    /^input: platform_run_id: Expected a platform run id/,
  );
  assert.equal(
    isAccepted(
      CanonicalEventEnvelope,
      withValue(example, "platform_run_id", "platform_20260102T101530Z"),
    ),
    true,
  );
});

Deno.test("the scenario id may be a string or a non-negative integer", () => {
  assert.equal(isAccepted(CanonicalEventEnvelope, withValue(example, "scenario_id", 7)), true);
  assert.equal(isAccepted(CanonicalEventEnvelope, withValue(example, "scenario_id", -7)), false);
  assert.equal(isAccepted(CanonicalEventEnvelope, withValue(example, "scenario_id", "")), false);
});

Deno.test("each required field must be present", () => {
  for (const key of ["event_id", "event_type", "ts_utc", "manifest_fingerprint"]) {
    assert.equal(
      rejection(CanonicalEventEnvelope, withoutKey(example, key)),
      `input: ${key}: Missing required key`,
    );
  }
});

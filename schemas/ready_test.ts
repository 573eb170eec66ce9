import assert from "node:assert/strict";
import { OraclePackRef, RunReadySignal } from "./ready.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const ready = fixture("worldstream/ready.json");

Deno.test("a complete READY signal is accepted", () => {
  const signal = accepted(RunReadySignal, ready);
  assert.equal(signal.platform_run_id, "platform_20260102T101530Z");
  assert.equal(signal.oracle_pack_ref?.engine_release, "engine-2026.01.0");
});

Deno.test("READY with only its required fields is accepted", () => {
  let minimal = ready;
  for (const key of ["plan_hash", "service_release_id", "environment", "provenance"]) {
    minimal = withoutKey(minimal, key);
  }
  for (const key of ["emitted_at_utc", "oracle_pack_ref"]) minimal = withoutKey(minimal, key);
  assert.equal(isAccepted(RunReadySignal, minimal), true);
});

Deno.test("READY rejects extra keys at the top, in provenance and in the pack ref", () => {
  for (const path of ["extra", "provenance.extra", "oracle_pack_ref.extra"]) {
    assert.equal(
      rejection(RunReadySignal, withValue(ready, path, 1)),
      `input: ${path}: Unexpected key (the format does not allow extra keys)`,
    );
  }
});

Deno.test("READY rejects a missing run config digest and an uppercase message id", () => {
  assert.equal(
    rejection(RunReadySignal, withoutKey(ready, "run_config_digest")),
    "input: run_config_digest: Missing required key",
  );
  assert.match(
    rejection(RunReadySignal, withValue(ready, "message_id", "A".repeat(64))),
    /^input: message_id: Expected a 64-char lowercase hex/,
  );
});

Deno.test("READY's emitted_at_utc is any string, since formats are not asserted", () => {
  assert.equal(isAccepted(RunReadySignal, withValue(ready, "emitted_at_utc", "yesterday")), true);
  assert.equal(isAccepted(RunReadySignal, withValue(ready, "emitted_at_utc", 5)), false);
});

Deno.test("an oracle pack ref needs at least one key and non-empty output refs", () => {
  assert.equal(
    rejection(OraclePackRef, {}),
    "input: Expected an object with at least one key, got {}",
  );
  assert.equal(isAccepted(OraclePackRef, { oracle_root: "s3://b/oracle" }), true);
  assert.match(
    rejection(OraclePackRef, { stream_view_output_refs: { s3_event_stream_with_fraud_6B: "" } }),
    /^input: stream_view_output_refs\.s3_event_stream_with_fraud_6B: /,
  );
});

Deno.test("READY's scenario id must not be empty", () => {
  assert.match(
    rejection(RunReadySignal, withValue(ready, "scenario_id", "")),
    /^input: scenario_id: /,
  );
});

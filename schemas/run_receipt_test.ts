import assert from "node:assert/strict";
import { RunReceipt } from "./run_receipt.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const receipt = fixture("worldstream/run_receipt.json");

Deno.test("a run receipt is accepted and keeps the engine's extra metadata", () => {
  const decoded = accepted(RunReceipt, receipt);
  assert.equal(decoded.seed, 123456789);
  assert.deepEqual(decoded.segments, { "1A": "ok" });
});

Deno.test("a run receipt needs the four world identifiers", () => {
  for (const key of ["run_id", "manifest_fingerprint", "parameter_hash", "seed"]) {
    assert.equal(
      rejection(RunReceipt, withoutKey(receipt, key)),
      `input: ${key}: Missing required key`,
    );
  }
});

Deno.test("a run receipt's identifiers are checked even though the format is open", () => {
  assert.match(
    rejection(RunReceipt, withValue(receipt, "run_id", "89ABCDEF0123456789ABCDEF01234567")),
    /^input: run_id: Expected a 32-char/,
  );
  assert.match(
    rejection(RunReceipt, withValue(receipt, "seed", "123")),
    /^input: seed: Expected number/,
  );
  assert.match(rejection(RunReceipt, withValue(receipt, "seed", -5)), /^input: seed: /);
  assert.match(
    rejection(RunReceipt, withValue(receipt, "external_roots", ["a", 1])),
    /^input: external_roots\[1\]: /,
  );
});

Deno.test("a run receipt's created_utc is any string", () => {
  assert.equal(isAccepted(RunReceipt, withValue(receipt, "created_utc", "2026-01-02 09:00")), true);
});

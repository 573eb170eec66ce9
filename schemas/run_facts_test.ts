import assert from "node:assert/strict";
import { GateReceipt, InstanceReceipt, OutputLocator, RunFactsView } from "./run_facts.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const facts = fixture("worldstream/run_facts_view.json");

Deno.test("a complete run facts view is accepted", () => {
  const view = accepted(RunFactsView, facts);
  assert.equal(view.pins.seed, 123456789);
  assert.equal(view.gate_receipts[0].gate_id, "gate.layer1.1A.validation");
});

Deno.test("the platform's gate and instance receipt examples are accepted", () => {
  assert.equal(
    isAccepted(GateReceipt, fixture("interface_pack/examples/gate_receipt.pass_1A.json")),
    true,
  );
  assert.equal(
    isAccepted(
      InstanceReceipt,
      fixture("interface_pack/examples/instance_proof_receipt.example.json"),
    ),
    true,
  );
});

Deno.test("a facts locator is closed, so the platform's output locator example with notes is not", () => {
  assert.equal(
    rejection(
      OutputLocator,
      fixture("interface_pack/examples/output_locator.outlet_catalogue.json"),
    ),
    "input: notes: Unexpected key (the format does not allow extra keys)",
  );
});

Deno.test("the facts view's produced_at_utc only has to be non-empty", () => {
  assert.equal(
    isAccepted(RunFactsView, withValue(facts, "locators.0.produced_at_utc", "2026-01-02")),
    true,
  );
  assert.match(
    rejection(RunFactsView, withValue(facts, "locators.0.produced_at_utc", "")),
    /^input: locators\[0\]\.produced_at_utc: /,
  );
});

Deno.test("bad pins are rejected at their path", () => {
  assert.match(rejection(RunFactsView, withValue(facts, "pins.seed", -1)), /^input: pins\.seed: /);
  assert.match(rejection(RunFactsView, withValue(facts, "pins.seed", 2.5)), /^input: pins\.seed: /);
  assert.match(
    rejection(RunFactsView, withValue(facts, "pins.platform_run_id", "platform_x")),
    /^input: pins\.platform_run_id: Expected a platform run id/,
  );
  assert.equal(
    rejection(RunFactsView, withoutKey(facts, "pins.scenario_id")),
    "input: pins.scenario_id: Missing required key",
  );
});

Deno.test("gate ids, statuses and digests are checked", () => {
  assert.match(
    rejection(RunFactsView, withValue(facts, "gate_receipts.0.gate_id", "gate one")),
    /^input: gate_receipts\[0\]\.gate_id: /,
  );
  assert.match(
    rejection(RunFactsView, withValue(facts, "gate_receipts.0.status", "pass")),
    /Expected "PASS" \| "FAIL"/,
  );
  assert.match(
    rejection(RunFactsView, withValue(facts, "gate_receipts.0.digest.algo", "md5")),
    /^input: gate_receipts\[0\]\.digest\.algo: /,
  );
  assert.match(
    rejection(RunFactsView, withValue(facts, "instance_receipts.0.target_ref.extra", 1)),
    /^input: instance_receipts\[0\]\.target_ref\.extra: Unexpected key/,
  );
});

Deno.test("each required part of the facts view must be present", () => {
  for (const key of ["pins", "locators", "gate_receipts", "policy_rev", "plan_ref", "status_ref"]) {
    assert.equal(
      rejection(RunFactsView, withoutKey(facts, key)),
      `input: ${key}: Missing required key`,
    );
  }
});

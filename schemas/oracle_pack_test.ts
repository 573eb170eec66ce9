import assert from "node:assert/strict";
import { OraclePackManifest, OraclePackSeal } from "./oracle_pack.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const manifest = fixture("worldstream/oracle_pack_manifest.json");
const seal = fixture("worldstream/oracle_pack_seal.json");

Deno.test("an oracle pack manifest is accepted", () => {
  assert.equal(accepted(OraclePackManifest, manifest).world_key.scenario_id, "baseline_v1");
});

Deno.test("a manifest's world key seed must be a non-negative integer", () => {
  assert.match(
    rejection(OraclePackManifest, withValue(manifest, "world_key.seed", -1)),
    /^input: world_key\.seed: Expected a non-negative integer, got -1$/,
  );
  assert.match(
    rejection(OraclePackManifest, withValue(manifest, "world_key.seed", 0.5)),
    /^input: world_key\.seed: /,
  );
});

Deno.test("a manifest's world key is closed and complete", () => {
  assert.match(
    rejection(OraclePackManifest, withValue(manifest, "world_key.run_id", "x")),
    /^input: world_key\.run_id: Unexpected key/,
  );
  assert.equal(
    rejection(OraclePackManifest, withoutKey(manifest, "world_key.parameter_hash")),
    "input: world_key.parameter_hash: Missing required key",
  );
  assert.match(
    rejection(OraclePackManifest, withValue(manifest, "world_key.scenario_id", "s".repeat(257))),
    /^input: world_key\.scenario_id: /,
  );
});

Deno.test("a manifest's created_at_utc only has to be non-empty", () => {
  assert.equal(
    isAccepted(
      OraclePackManifest,
      withValue(manifest, "created_at_utc", "2026-01-02T09:30:00+00:00"),
    ),
    true,
  );
  assert.equal(isAccepted(OraclePackManifest, withValue(manifest, "created_at_utc", "")), false);
});

Deno.test("a seal is accepted with either outcome and nothing else", () => {
  assert.equal(accepted(OraclePackSeal, seal).seal_status, "SEALED_OK");
  assert.equal(isAccepted(OraclePackSeal, withValue(seal, "seal_status", "SEALED_FAILED")), true);
  assert.match(
    rejection(OraclePackSeal, withValue(seal, "seal_status", "SEALED")),
    /^input: seal_status: Expected "SEALED_OK" \| "SEALED_FAILED"/,
  );
  assert.equal(
    rejection(OraclePackSeal, withoutKey(seal, "sealed_at_utc")),
    "input: sealed_at_utc: Missing required key",
  );
  assert.match(
    rejection(OraclePackSeal, withValue(seal, "note", "x")),
    /^input: note: Unexpected key/,
  );
});

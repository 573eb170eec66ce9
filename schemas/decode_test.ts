import assert from "node:assert/strict";
import { Effect, Exit, Schema } from "effect";
import { decodeJsonText, decodeWith, formatPath } from "./decode.ts";
import { WorldstreamError } from "./errors.ts";
import { OraclePackManifest } from "./oracle_pack.ts";
import { RunFactsView } from "./run_facts.ts";
import { RunReceipt } from "./run_receipt.ts";
import { fixture, withValue } from "./_testing.ts";

const manifest = fixture("worldstream/oracle_pack_manifest.json");

function failureOf<A>(effect: Effect.Effect<A, WorldstreamError>): WorldstreamError {
  const exit = Effect.runSyncExit(Effect.flip(effect));
  if (Exit.isFailure(exit)) throw new Error("Expected a failure");
  return exit.value;
}

Deno.test("a failure names the source, the field path and the problem on one line", () => {
  const decode = decodeWith(
    OraclePackManifest,
    "PACK_MANIFEST_INVALID",
    "run/_oracle_pack_manifest.json",
  );
  const error = failureOf(decode(withValue(manifest, "world_key.manifest_fingerprint", "XYZ")));
  assert.ok(error instanceof WorldstreamError);
  assert.equal(error.reason, "PACK_MANIFEST_INVALID");
  assert.equal(
    error.message,
    `run/_oracle_pack_manifest.json: world_key.manifest_fingerprint: Expected a 64-char lowercase hex string, got "XYZ"`,
  );
});

Deno.test("array positions appear in the field path", () => {
  const facts = fixture("worldstream/run_facts_view.json");
  const error = failureOf(
    decodeWith(RunFactsView, "FACTS_VIEW_INVALID", "facts.json")(
      withValue(facts, "locators.0.path", ""),
    ),
  );
  assert.match(
    error.message,
    /^facts\.json: locators\[0\]\.path: Expected a string with at least 1/,
  );
});

Deno.test("an extra key on a closed object is rejected at its path", () => {
  const error = failureOf(
    decodeWith(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json")(
      withValue(manifest, "world_key.colour", "blue"),
    ),
  );
  assert.equal(
    error.message,
    "m.json: world_key.colour: Unexpected key (the format does not allow extra keys)",
  );
});

Deno.test("a missing required key is named", () => {
  const error = failureOf(
    decodeWith(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json")({ version: "v0" }),
  );
  assert.equal(error.message, "m.json: oracle_pack_id: Missing required key");
});

Deno.test("open formats keep the keys they do not list", () => {
  const receipt = Effect.runSync(
    decodeWith(RunReceipt, "RUN_RECEIPT_UNREADABLE", "run_receipt.json")(
      fixture("worldstream/run_receipt.json"),
    ),
  );
  assert.deepEqual(receipt.segments, { "1A": "ok" });
  assert.equal(receipt.engine_version, "engine-2026.01.0");
});

Deno.test("a non-object input is reported without a field path", () => {
  const error = failureOf(decodeWith(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json")([]));
  assert.equal(error.message, "m.json: Expected object, got []");
});

Deno.test("long offending values are cut so the message stays short", () => {
  const error = failureOf(
    decodeWith(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json")(
      withValue(manifest, "catalogue_digest", "x".repeat(5000)),
    ),
  );
  assert.ok(error.message.length < 300, error.message);
  assert.ok(!error.message.includes("\n"));
});

Deno.test("raw JSON text is parsed and decoded", () => {
  const decode = decodeJsonText(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json");
  const value = Effect.runSync(decode(JSON.stringify(manifest)));
  assert.equal(value.world_key.seed, 123456789);
});

Deno.test("malformed JSON text fails with the same reason code", () => {
  const decode = decodeJsonText(OraclePackManifest, "PACK_MANIFEST_INVALID", "m.json");
  const error = failureOf(decode('{"version": '));
  assert.equal(error.reason, "PACK_MANIFEST_INVALID");
  assert.match(error.message, /^m\.json: Malformed JSON: /);
  assert.ok(!error.message.includes("\n"));
});

Deno.test("valid JSON with a bad field fails like decodeWith does", () => {
  const decode = decodeJsonText(Schema.Struct({ n: Schema.Number }), "BAD_ARGS", "n.json");
  assert.equal(failureOf(decode('{"n": "1"}')).message, `n.json: n: Expected number, got "1"`);
});

Deno.test("paths render dotted names, indices and quoted odd keys", () => {
  assert.equal(formatPath(["world_key", "seed"]), "world_key.seed");
  assert.equal(formatPath(["locators", 0, "path"]), "locators[0].path");
  assert.equal(formatPath(["refs", "a b"]), `refs["a b"]`);
  assert.equal(formatPath([]), "");
});

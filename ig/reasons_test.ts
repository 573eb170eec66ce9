import assert from "node:assert/strict";
import { IG_REASONS } from "./reasons.ts";

const platform = JSON.parse(
  await Deno.readTextFile(
    new URL("../tests/fixtures/platform_ig_reason_codes.json", import.meta.url),
  ),
) as { readonly codes: ReadonlyArray<string> };

Deno.test("every quarantine reason of the reference gate is one the platform's gate uses", () => {
  const foreign = Object.keys(IG_REASONS).filter((code) => !platform.codes.includes(code));
  assert.deepEqual(foreign, [], "reasons the platform's gate never gives");
});

Deno.test("the platform's envelope and payload schema failures keep their platform names", () => {
  for (const code of ["ENVELOPE_INVALID", "SCHEMA_FAIL", "PINS_MISSING", "PAYLOAD_HASH_MISMATCH"]) {
    assert.ok(platform.codes.includes(code), `${code} is in the platform's list`);
    assert.ok(code in IG_REASONS, `${code} is one of the reference gate's reasons`);
  }
});

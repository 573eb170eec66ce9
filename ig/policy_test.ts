import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { WorldstreamError } from "../schemas/errors.ts";
import { loadIgPolicy } from "./policy.ts";

// The reference gate's policy is four editable files (profiles/ig/*.yaml and the row schemas);
// a broken edit must stop the gate at start with IG_POLICY_INVALID naming the file and the
// problem, never let it run with a policy it half understood.

const TMP = await Deno.makeTempDir({ prefix: "ig_policy_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BUNDLED = new URL("../profiles/ig/schema_policy_v0.yaml", import.meta.url);

let files = 0;

/** A schema policy file holding the bundled one's text after `edit`. */
async function schemaPolicy(edit: (text: string) => string): Promise<string> {
  const path = join(TMP, `schema_policy_${++files}.yaml`);
  await Deno.writeTextFile(path, edit(await Deno.readTextFile(BUNDLED)));
  return path;
}

async function refusal(path: string): Promise<WorldstreamError> {
  const error = await Effect.runPromise(Effect.flip(loadIgPolicy({ schemaPolicy: path })));
  assert.ok(error instanceof WorldstreamError, `Expected a WorldstreamError, got ${error}`);
  assert.equal(error.reason, "IG_POLICY_INVALID");
  return error;
}

Deno.test("the bundled policy loads", async () => {
  const policy = await Effect.runPromise(loadIgPolicy());
  assert.ok(policy.rules.has("s3_event_stream_with_fraud_6B"));
});

Deno.test("a policy file that does not exist fails IG_POLICY_INVALID naming it", async () => {
  const path = join(TMP, "no_such_policy.yaml");
  assert.match((await refusal(path)).message, new RegExp(`Cannot read ${path}`));
});

Deno.test("a policy file that is not YAML fails IG_POLICY_INVALID naming the file", async () => {
  const e = await refusal(await schemaPolicy((text) => `${text}\n  - event_type: [unclosed\n`));
  assert.match(e.message, /^schema_policy is not YAML/);
});

Deno.test("a policy entry without its class fails IG_POLICY_INVALID naming the field", async () => {
  const e = await refusal(
    await schemaPolicy((text) => text.replace("    class: traffic_fraud\n", "")),
  );
  assert.match(e.message, /^schema_policy: policies\[1\]\.class: Missing required key/);
});

Deno.test("a policy that puts an event type in another class than the class map fails IG_POLICY_INVALID", async () => {
  const e = await refusal(
    await schemaPolicy((text) => text.replace("class: traffic_fraud", "class: traffic_baseline")),
  );
  assert.match(
    e.message,
    /s3_event_stream_with_fraud_6B is class traffic_baseline in schema_policy but traffic_fraud in class_map/,
  );
});

/**
 * `explain` as a user runs it (a subprocess of main.ts): the decision, the matching rule with its
 * 0-based index and text, the risk and its source, and why, with the same facts as the last JSON
 * line; exit 0 whatever the decision. A registry or policy that does not load fails with its
 * code, and a principal of no known kind is BAD_ARGS.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { stringify } from "yaml";
import { fileTempDir, runCommand, shippedProfile } from "../tests/_testing.ts";

const DIR = await fileTempDir("explain_test_");
const SITE = { dir: DIR, vars: {} };

function explain(...args: Array<string>) {
  return Effect.runPromise(runCommand(["explain", ...args], SITE, { timeoutMs: 60_000 }));
}

/** A copy of the local profile whose governance files are `files` (written when given). */
function profileWith(name: string, files: { policies?: unknown; capabilities?: string }): string {
  const profile = shippedProfile("local") as unknown as {
    governance: Record<string, string>;
  };
  if (files.policies !== undefined) {
    const path = join(DIR, `${name}-policies.yaml`);
    if (files.policies !== "missing") Deno.writeTextFileSync(path, stringify(files.policies));
    profile.governance.policies_ref = path;
  }
  if (files.capabilities !== undefined) {
    const path = join(DIR, `${name}-capabilities.yaml`);
    Deno.writeTextFileSync(path, files.capabilities);
    profile.governance.capabilities_ref = path;
  }
  const path = join(DIR, `${name}.yaml`);
  Deno.writeTextFileSync(path, stringify(profile));
  return path;
}

Deno.test("explain shows an operator's purge escalated to approval by its CRITICAL risk", async () => {
  const out = await explain("--principal", "user:alice", "--capability", "deadletter.purge");
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(out.result, {
    decision: "REQUIRE_APPROVAL",
    rule: 3,
    risk: "CRITICAL",
    risk_source: "registry",
    reason: "user:alice → deadletter.purge: rule 3 (user:* [*] ALLOW) matches first and allows " +
      "it, but risk CRITICAL (capability registry) needs an operator's approval",
  });
  const lines = out.stdout.trim().split("\n");
  assert.deepEqual(lines.slice(0, 3), [
    "decision: REQUIRE_APPROVAL",
    "rule: 3 (user:* [*] ALLOW)",
    "risk: CRITICAL (declared by the capability registry)",
  ]);
  assert.match(lines[3], /^why: user:alice → deadletter\.purge: rule 3 /);
});

Deno.test("explain shows a bus sender denied a checkpoint reset, and an undeclared capability counted HIGH", async () => {
  const denied = await explain("--principal", "agent:bot", "--capability", "checkpoint.reset");
  assert.equal(denied.code, 0, denied.stderr);
  assert.equal(denied.result?.decision, "DENY");
  assert.equal(denied.result?.rule, 2);
  assert.equal(denied.result?.risk, "HIGH");
  const unknown = await explain("--principal", "user:bob", "--capability", "cloud.vm.create");
  assert.equal(unknown.result?.decision, "REQUIRE_APPROVAL");
  assert.equal(unknown.result?.risk, "HIGH");
  assert.equal(unknown.result?.risk_source, "unknown_capability");
  assert.match(
    unknown.stdout,
    /risk: HIGH \(assumed: the capability registry does not declare it\)/,
  );
});

Deno.test("explain under a profile whose policy file is missing shows everything denied by default", async () => {
  const profile = profileWith("nopolicy", { policies: "missing" });
  const out = await explain(
    "--profile",
    profile,
    "--principal",
    "svc:world_stream_producer",
    "--capability",
    "wsp.stream",
  );
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.result?.decision, "DENY");
  assert.equal(out.result?.rule, "default");
  assert.match(String(out.result?.reason), /nopolicy-policies\.yaml does not exist/);
  assert.match(out.stdout, /^rule: default \(no policy file: DENY\)$/m);
});

Deno.test("explain fails with the code of a registry or policy that does not load", async () => {
  const capabilities = stringify({
    version: "1",
    capabilities: [{
      id: "data.erase",
      name: "Erase",
      description: "Erases data",
      operation_type: "DELETE",
      side_effects: { reversible: true, scope: "local", description: "Erases" },
      compensation: { supported: true, strategy: "manual", capability_id: null },
      risk: { level: "MEDIUM", justification: "none", requires_approval: false },
      parameters: [],
    }],
  });
  const risky = await explain(
    "--profile",
    profileWith("risky", { capabilities }),
    "--principal",
    "user:a",
    "--capability",
    "data.erase",
  );
  assert.equal(risky.code, 1);
  assert.equal(risky.result?.reason, "CAPABILITY_RISK_INCONSISTENT");
  assert.ok(
    String(risky.result?.message).endsWith(
      "data.erase: Risk Consistency Check Failed: DELETE operations require risk level HIGH or CRITICAL, got MEDIUM",
    ),
    String(risky.result?.message),
  );
  const pattern = await explain(
    "--profile",
    profileWith("pattern", {
      policies: { rules: [{ principal: "agent:*x", capabilities: ["*"], action: "ALLOW" }] },
    }),
    "--principal",
    "user:a",
    "--capability",
    "wsp.stream",
  );
  assert.equal(pattern.code, 1);
  assert.equal(pattern.result?.reason, "POLICY_PATTERN_INVALID");
  const bad = await explain("--principal", "alice", "--capability", "wsp.stream");
  assert.equal(bad.code, 1);
  assert.equal(bad.result?.reason, "BAD_ARGS");
});

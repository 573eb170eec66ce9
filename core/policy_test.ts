/**
 * The policy engine, after the AI-First runtime's policy cases: first match wins, `*` and
 * trailing-`*` wildcards on principals and capabilities, risk escalation (ALLOW on HIGH or
 * CRITICAL, or on an undeclared capability, becomes REQUIRE_APPROVAL), DENY never relaxed,
 * default DENY, and a missing file denying everything; bad files get their codes. Policies are
 * real YAML files (the AI-First example policy among them) decided against a small registry.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Exit } from "effect";
import { stringify } from "yaml";
import { evaluate, loadPolicies, type PolicySet } from "./policy.ts";
import type { CapabilityRegistry } from "./capabilities.ts";
import type { Capability, RiskLevel } from "../schemas/capability.ts";
import type { WorldstreamError } from "../schemas/errors.ts";

const TMP = await Deno.makeTempDir({ prefix: "policy_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

function cap(id: string, level: RiskLevel, requiresApproval = false): Capability {
  return {
    id,
    name: id,
    description: id,
    operation_type: "WRITE",
    side_effects: { reversible: true, scope: "local", description: "test" },
    compensation: { supported: true, strategy: "automatic" },
    risk: { level, justification: "test", requires_approval: requiresApproval },
    parameters: [],
  };
}

const REGISTRY: CapabilityRegistry = {
  source: "registry.yaml",
  digest: "r".repeat(64),
  capabilities: new Map([
    cap("io.fs.read_file", "LOW"),
    cap("io.fs.write_file", "MEDIUM"),
    cap("io.fs.delete_file", "HIGH"),
    cap("db.drop_database", "CRITICAL"),
    cap("workflow.run", "LOW"),
    cap("api.payment.charge", "LOW"),
    cap("crm.export", "MEDIUM", true),
  ].map((c) => [c.id, c])),
};

/** The AI-First runtime's example policy (contracts/ai-first/policies.v3.yaml), its rules as shipped. */
const AI_FIRST_V3 = `
default: DENY
rules:
  - principal: "agent:data_processor"
    capabilities: ["io.fs.read_file", "io.fs.write_file", "io.fs.create_directory", "io.fs.delete_file"]
    action: ALLOW
  - principal: "agent:orchestrator"
    capabilities: ["workflow.*", "io.fs.*", "crm.*"]
    action: ALLOW
  - principal: "agent:*"
    capabilities: ["db.delete_table", "db.drop_database", "db.truncate_table"]
    action: REQUIRE_APPROVAL
  - principal: "agent:*"
    capabilities: ["api.payment.*", "api.auth.*", "api.admin.*"]
    action: DENY
  - principal: "user:*"
    capabilities: ["*"]
    action: ALLOW
  - principal: "agent:test_*"
    capabilities: ["*"]
    action: ALLOW
`;

let files = 0;
async function write(doc: unknown): Promise<string> {
  const path = join(TMP, `policies-${++files}.yaml`);
  await Deno.writeTextFile(path, typeof doc === "string" ? doc : stringify(doc));
  return path;
}

async function loaded(doc: unknown): Promise<PolicySet> {
  return await Effect.runPromise(loadPolicies(await write(doc)));
}

async function refused(doc: unknown): Promise<WorldstreamError> {
  const exit = await Effect.runPromiseExit(loadPolicies(await write(doc)));
  assert.ok(Exit.isFailure(exit), "expected the policy to be refused");
  return exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
}

function decide(policy: PolicySet, principal: string, capability: string) {
  return evaluate(policy, REGISTRY, { principal, capability });
}

Deno.test("the AI-First example policy decides its cases as the runtime does", async () => {
  const policy = await loaded(AI_FIRST_V3);
  const cases: ReadonlyArray<[string, string, string, number | "default"]> = [
    ["agent:data_processor", "io.fs.read_file", "ALLOW", 0],
    ["agent:data_processor", "io.fs.write_file", "ALLOW", 0],
    // Allowed by rule 0, but HIGH: escalated.
    ["agent:data_processor", "io.fs.delete_file", "REQUIRE_APPROVAL", 0],
    ["agent:orchestrator", "workflow.run", "ALLOW", 1],
    ["agent:reporter", "db.drop_database", "REQUIRE_APPROVAL", 2],
    // DENY on a LOW capability stays DENY.
    ["agent:reporter", "api.payment.charge", "DENY", 3],
    ["user:alice", "io.fs.read_file", "ALLOW", 4],
    ["user:alice", "db.drop_database", "REQUIRE_APPROVAL", 4],
    ["agent:test_runner", "io.fs.write_file", "ALLOW", 5],
    ["agent:stranger", "io.fs.read_file", "DENY", "default"],
  ];
  for (const [principal, capability, decision, rule] of cases) {
    const d = decide(policy, principal, capability);
    assert.equal(d.decision, decision, `${principal} ${capability}: ${d.reason}`);
    assert.equal(d.rule, rule, `${principal} ${capability}: ${d.reason}`);
  }
});

Deno.test("the first matching rule wins, even when a later one would decide otherwise", async () => {
  const policy = await loaded({
    rules: [
      { principal: "agent:bot", capabilities: ["io.fs.write_file"], action: "DENY" },
      { principal: "agent:*", capabilities: ["io.fs.*"], action: "ALLOW" },
    ],
  });
  const denied = decide(policy, "agent:bot", "io.fs.write_file");
  assert.equal(denied.decision, "DENY");
  assert.equal(denied.rule, 0);
  assert.equal(denied.rule_text, "agent:bot [io.fs.write_file] DENY");
  const allowed = decide(policy, "agent:bot", "io.fs.read_file");
  assert.equal(allowed.decision, "ALLOW");
  assert.equal(allowed.rule, 1);
});

Deno.test("wildcards: * alone matches anything, a trailing * a prefix, nothing else is a wildcard", async () => {
  const policy = await loaded({
    rules: [
      { principal: "agent:test_*", capabilities: ["io.fs.read_file"], action: "ALLOW" },
      { principal: "user:*", capabilities: ["workflow.*"], action: "ALLOW" },
      { principal: "*", capabilities: ["crm*"], action: "DENY" },
    ],
  });
  assert.equal(decide(policy, "agent:test_one", "io.fs.read_file").rule, 0);
  assert.equal(decide(policy, "agent:tester", "io.fs.read_file").rule, "default");
  assert.equal(decide(policy, "user:bob", "workflow.run").rule, 1);
  // `workflow.*` needs the dot: `workflow` itself and `workflows.x` are other names.
  assert.equal(decide(policy, "user:bob", "workflows.run").rule, "default");
  assert.equal(decide(policy, "svc:anyone", "crm.export").rule, 2);
  assert.equal(decide(policy, "agent:x", "crm.export").decision, "DENY");
});

Deno.test("escalation: an ALLOW on HIGH, CRITICAL, requires_approval or an undeclared capability needs approval", async () => {
  const policy = await loaded({
    rules: [{ principal: "user:*", capabilities: ["*"], action: "ALLOW" }],
  });
  const high = decide(policy, "user:alice", "io.fs.delete_file");
  assert.equal(high.decision, "REQUIRE_APPROVAL");
  assert.equal(high.risk, "HIGH");
  assert.equal(high.risk_source, "registry");
  assert.equal(decide(policy, "user:alice", "db.drop_database").decision, "REQUIRE_APPROVAL");
  const flagged = decide(policy, "user:alice", "crm.export");
  assert.equal(flagged.decision, "REQUIRE_APPROVAL");
  assert.match(flagged.reason, /requires_approval/);
  const unknown = decide(policy, "user:alice", "cloud.vm.create");
  assert.equal(unknown.decision, "REQUIRE_APPROVAL");
  assert.equal(unknown.risk, "HIGH");
  assert.equal(unknown.risk_source, "unknown_capability");
  const medium = decide(policy, "user:alice", "io.fs.write_file");
  assert.equal(medium.decision, "ALLOW");
  assert.equal(medium.risk, "MEDIUM");
});

Deno.test("a DENY is never relaxed, whatever the risk", async () => {
  const policy = await loaded({ rules: [{ principal: "*", capabilities: ["*"], action: "DENY" }] });
  for (const capability of ["io.fs.read_file", "db.drop_database", "cloud.vm.create"]) {
    assert.equal(decide(policy, "user:root", capability).decision, "DENY");
  }
});

Deno.test("no matching rule takes the default: DENY when unset, the file's when set", async () => {
  const unset = await loaded({
    rules: [{ principal: "user:a", capabilities: ["*"], action: "ALLOW" }],
  });
  const d = decide(unset, "user:b", "io.fs.read_file");
  assert.equal(d.decision, "DENY");
  assert.equal(d.rule, "default");
  assert.match(d.reason, /no rule matches, so the default DENY applies/);
  const open = await loaded({ default: "ALLOW" });
  assert.equal(decide(open, "user:b", "io.fs.read_file").decision, "ALLOW");
  // The default is escalated like any ALLOW.
  assert.equal(decide(open, "user:b", "db.drop_database").decision, "REQUIRE_APPROVAL");
});

Deno.test("a missing policy file denies everything, and says so", async () => {
  const policy = await Effect.runPromise(loadPolicies(join(TMP, "no-such-policies.yaml")));
  assert.equal(policy.present, false);
  for (
    const [principal, capability] of [["user:admin", "io.fs.read_file"], ["svc:x", "wsp.stream"]]
  ) {
    const d = decide(policy, principal, capability);
    assert.equal(d.decision, "DENY");
    assert.equal(d.rule, "default");
    assert.match(d.reason, /no-such-policies\.yaml does not exist, so every action is denied/);
  }
});

Deno.test("rule conditions narrow a rule to requests with those facts", async () => {
  const policy = await loaded({
    rules: [{
      principal: "svc:*",
      capabilities: ["io.fs.write_file"],
      action: "ALLOW",
      conditions: { privacy_tier: ["local"], profile_id: "local" },
    }],
  });
  const facts = { privacy_tier: "local", profile_id: "local" };
  const at = (f: Record<string, string>) =>
    evaluate(policy, REGISTRY, { principal: "svc:p", capability: "io.fs.write_file", facts: f });
  assert.equal(at(facts).decision, "ALLOW");
  assert.equal(at({ ...facts, profile_id: "prod" }).decision, "DENY");
  assert.equal(at({ privacy_tier: "local" }).decision, "DENY");
});

Deno.test("an unknown action, an unknown condition and a syntax error are refused POLICY_INVALID", async () => {
  const action = await refused({
    rules: [{ principal: "user:*", capabilities: ["*"], action: "MAYBE" }],
  });
  assert.equal(action.reason, "POLICY_INVALID");
  assert.match(action.message, /rules\[0\]\.action: /);
  const condition = await refused({
    rules: [{
      principal: "user:*",
      capabilities: ["*"],
      action: "ALLOW",
      conditions: { hour: "9" },
    }],
  });
  assert.equal(condition.reason, "POLICY_INVALID");
  assert.match(condition.message, /rules\[0\]\.conditions\.hour/);
  const syntax = await refused("default: DENY\nrules:\n  - principal: [\n");
  assert.equal(syntax.reason, "POLICY_INVALID");
  assert.match(syntax.message, /Not valid YAML/);
  const noCapabilities = await refused({
    rules: [{ principal: "user:*", capabilities: [], action: "ALLOW" }],
  });
  assert.equal(noCapabilities.reason, "POLICY_INVALID");
});

Deno.test("malformed patterns are refused POLICY_PATTERN_INVALID naming the rule", async () => {
  const cases: ReadonlyArray<[string, string, RegExp]> = [
    ["agent:*bot", "io.fs.read_file", /rules\[0\]\.principal: "agent:\*bot"/],
    ["robot", "io.fs.read_file", /rules\[0\]\.principal: "robot"/],
    ["", "io.fs.read_file", /rules\[0\]\.principal: ""/],
    ["agent:*", "io.*.read", /rules\[0\]\.capabilities\[0\]: "io\.\*\.read"/],
    ["agent:*", "**", /rules\[0\]\.capabilities\[0\]: "\*\*"/],
    ["agent:*", "IO FS", /rules\[0\]\.capabilities\[0\]: "IO FS"/],
  ];
  for (const [principal, capability, message] of cases) {
    const error = await refused({
      rules: [{ principal, capabilities: [capability], action: "ALLOW" }],
    });
    assert.equal(error.reason, "POLICY_PATTERN_INVALID", `${principal} ${capability}`);
    assert.match(error.message, message);
  }
});

Deno.test("a repeated rule is refused POLICY_RULE_DUPLICATE, whatever its action", async () => {
  const error = await refused({
    rules: [
      { principal: "agent:*", capabilities: ["a.b", "c.d"], action: "ALLOW" },
      { principal: "user:*", capabilities: ["*"], action: "ALLOW" },
      { principal: "agent:*", capabilities: ["c.d", "a.b"], action: "DENY" },
    ],
  });
  assert.equal(error.reason, "POLICY_RULE_DUPLICATE");
  assert.match(error.message, /rules\[2\] repeats rules\[0\]/);
});

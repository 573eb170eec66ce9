/**
 * The capability policy engine, with the AI-First runtime's semantics: rules are tried in order
 * and the first whose principal pattern, one of whose capability patterns and whose conditions
 * match decides; no match takes the file's default (DENY when unset); a missing policy file
 * denies everything. A pattern is `*`, an exact name, or a prefix ending in `*`. The risk of a
 * capability comes from the registry (one it does not declare counts as HIGH); an ALLOW on a
 * HIGH or CRITICAL capability, or on one that declares `requires_approval`, becomes
 * REQUIRE_APPROVAL. DENY is never relaxed.
 */
import { Effect } from "effect";
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { CapabilityRegistry } from "./capabilities.ts";
import { readYamlFile, shownPath } from "./yaml_file.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail } from "../schemas/errors.ts";
import type { RiskLevel } from "../schemas/capability.ts";
import {
  CONDITION_KEYS,
  type ConditionKey,
  type PolicyAction,
  PolicyFile,
  type PolicyRule,
} from "../schemas/policy.ts";

/** A loaded policy: its rules in order and its default, or none at all (the file is missing). */
export interface PolicySet {
  /** Absolute path of the file. */
  readonly source: string;
  /** False when the file does not exist: every action is then denied. */
  readonly present: boolean;
  readonly default: PolicyAction;
  readonly rules: ReadonlyArray<PolicyRule>;
  /** sha256 of the file's text ("missing" when there is none). */
  readonly digest: string;
}

/** The principal kinds: the runtime itself, control-bus senders, admin-API token names. */
export const PRINCIPAL_KINDS = ["svc", "agent", "user"] as const;

const PRINCIPAL = /^(svc|agent|user):[A-Za-z0-9_.@-]+$/;
const PRINCIPAL_PATTERN = /^(\*|(svc|agent|user):[A-Za-z0-9_.@-]*\*?)$/;
const CAPABILITY_PATTERN = /^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.?\*)?)$/;

/** True when `principal` is `svc:<name>`, `agent:<name>` or `user:<name>`. */
export function isPrincipal(principal: string): boolean {
  return PRINCIPAL.test(principal);
}

/** `*` matches anything, `prefix*` anything that starts with prefix, otherwise equality. */
export function matchesPattern(pattern: string, name: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

/** The facts of one request a rule's conditions are checked against. */
export type RequestFacts = Partial<Record<ConditionKey, string>>;

/** How risk was found: declared by the registry, or assumed HIGH for an undeclared capability. */
export type RiskSource = "registry" | "unknown_capability";

/** One decision and everything that explains it. */
export interface PolicyDecision {
  readonly principal: string;
  readonly capability: string;
  readonly decision: PolicyAction;
  /** The matching rule's 0-based index, or "default" when none matched. */
  readonly rule: number | "default";
  /** The matching rule as text (or the default), e.g. `agent:* [deadletter.*] DENY`. */
  readonly rule_text: string;
  readonly risk: RiskLevel;
  readonly risk_source: RiskSource;
  /** Why, in one line. */
  readonly reason: string;
  readonly policy_digest: string;
  readonly registry_digest: string;
}

/** A rule as one line: `principal [capabilities] ACTION {conditions}`. */
export function ruleText(rule: PolicyRule): string {
  const when = rule.conditions === undefined ? "" : ` when ${canonicalJson(rule.conditions)}`;
  return `${rule.principal} [${rule.capabilities.join(", ")}] ${rule.action}${when}`;
}

function conditionsHold(rule: PolicyRule, facts: RequestFacts): boolean {
  if (rule.conditions === undefined) return true;
  return CONDITION_KEYS.every((key) => {
    const wanted = rule.conditions?.[key];
    if (wanted === undefined) return true;
    const fact = facts[key];
    return fact !== undefined && (typeof wanted === "string" ? [wanted] : wanted).includes(fact);
  });
}

/** Decides what `principal` may do with `capability` under `policy` and `registry`. */
export function evaluate(
  policy: PolicySet,
  registry: CapabilityRegistry,
  request: {
    readonly principal: string;
    readonly capability: string;
    readonly facts?: RequestFacts;
  },
): PolicyDecision {
  const { principal, capability } = request;
  const declared = registry.capabilities.get(capability);
  const risk: RiskLevel = declared?.risk.level ?? "HIGH";
  const riskSource: RiskSource = declared === undefined ? "unknown_capability" : "registry";
  const base = {
    principal,
    capability,
    risk,
    risk_source: riskSource,
    policy_digest: policy.digest,
    registry_digest: registry.digest,
  };
  const riskText = declared === undefined
    ? `risk HIGH (${capability} is not in the capability registry)`
    : `risk ${risk} (capability registry)`;
  const who = `${principal} → ${capability}`;
  if (!policy.present) {
    return {
      ...base,
      decision: "DENY",
      rule: "default",
      rule_text: "no policy file: DENY",
      reason: `${who}: the policy file ${shownPath(policy.source)} does not exist, ` +
        "so every action is denied",
    };
  }
  if (!isPrincipal(principal)) {
    return {
      ...base,
      decision: "DENY",
      rule: "default",
      rule_text: `default ${policy.default}`,
      reason:
        `${who}: ${principal} is not a principal (svc:<name>, agent:<name> or user:<name>), ` +
        "so no rule applies and it is denied",
    };
  }
  const index = policy.rules.findIndex((rule) =>
    matchesPattern(rule.principal, principal) &&
    rule.capabilities.some((pattern) => matchesPattern(pattern, capability)) &&
    conditionsHold(rule, request.facts ?? {})
  );
  const rule = index === -1 ? undefined : policy.rules[index];
  const action = rule?.action ?? policy.default;
  const by = rule === undefined
    ? `no rule matches, so the default ${action} applies`
    : `rule ${index} (${ruleText(rule)}) matches first`;
  const located = {
    ...base,
    rule: index === -1 ? "default" as const : index,
    rule_text: rule === undefined ? `default ${action}` : ruleText(rule),
  };
  if (action === "ALLOW" && (risk === "HIGH" || risk === "CRITICAL")) {
    return {
      ...located,
      decision: "REQUIRE_APPROVAL",
      reason: `${who}: ${by} and allows it, but ${riskText} needs an operator's approval`,
    };
  }
  if (action === "ALLOW" && declared?.risk.requires_approval === true) {
    return {
      ...located,
      decision: "REQUIRE_APPROVAL",
      reason: `${who}: ${by} and allows it, but the registry marks ${capability} ` +
        `requires_approval (${riskText})`,
    };
  }
  const verb = action === "ALLOW"
    ? `allows it (${riskText} needs no approval)`
    : action === "DENY"
    ? `denies it (${riskText})`
    : `requires an operator's approval (${riskText})`;
  return { ...located, decision: action, reason: `${who}: ${by} and ${verb}` };
}

/**
 * Checks a decoded policy: patterns well formed (POLICY_PATTERN_INVALID), no rule repeated
 * (POLICY_RULE_DUPLICATE: same principal, capabilities and conditions, whatever the action,
 * since the later one could never match first). `file` names the file in messages.
 */
export function checkPolicy(doc: PolicyFile, file: string) {
  const rules = doc.rules ?? [];
  const seen = new Map<string, number>();
  for (const [i, rule] of rules.entries()) {
    if (!PRINCIPAL_PATTERN.test(rule.principal)) {
      return Effect.fail(fail(
        "POLICY_PATTERN_INVALID",
        `${file}: rules[${i}].principal: ${JSON.stringify(rule.principal)} is not a principal ` +
          "pattern (*, or svc:/agent:/user: and a name, with * only at the end)",
      ));
    }
    for (const [j, pattern] of rule.capabilities.entries()) {
      if (!CAPABILITY_PATTERN.test(pattern)) {
        return Effect.fail(fail(
          "POLICY_PATTERN_INVALID",
          `${file}: rules[${i}].capabilities[${j}]: ${JSON.stringify(pattern)} is not a ` +
            "capability pattern (*, or a dotted lower-case id, with * only at the end)",
        ));
      }
    }
    const key = canonicalJson({
      principal: rule.principal,
      capabilities: [...new Set(rule.capabilities)].sort(),
      conditions: rule.conditions ?? null,
    });
    const first = seen.get(key);
    if (first !== undefined) {
      return Effect.fail(fail(
        "POLICY_RULE_DUPLICATE",
        `${file}: rules[${i}] repeats rules[${first}] (${ruleText(rule)}): ` +
          "the later one can never match first",
      ));
    }
    seen.set(key, i);
  }
  return Effect.succeed(rules);
}

/**
 * Loads and checks the policy at `path` (absolute). A missing file is not an error: it is a
 * policy that denies everything.
 */
export const loadPolicies = Effect.fn("loadPolicies")(function* (
  path: string,
  field = "governance.policies_ref",
) {
  const file = shownPath(path);
  const read = yield* readYamlFile(path);
  switch (read.kind) {
    case "missing":
      return {
        source: path,
        present: false,
        default: "DENY",
        rules: [],
        digest: "missing",
      } satisfies PolicySet;
    case "unreadable":
      return yield* fail(
        "POLICY_INVALID",
        `${field}: cannot read the policy file ${file}: ${read.problem}`,
      );
    case "syntax":
      return yield* fail("POLICY_INVALID", `${file}: ${read.problem}`);
  }
  const doc = yield* decodeWith(PolicyFile, "POLICY_INVALID", file)(read.doc ?? {});
  const rules = yield* checkPolicy(doc, file);
  return {
    source: path,
    present: true,
    default: doc.default ?? "DENY",
    rules,
    digest: sha256Hex(read.text),
  } satisfies PolicySet;
});

/** A digest of one decision's inputs, for its receipt. */
export function decisionDigest(decision: PolicyDecision, facts: RequestFacts): string {
  return sha256Hex(canonicalJson({
    principal: decision.principal,
    capability: decision.capability,
    facts,
    policy_digest: decision.policy_digest,
    registry_digest: decision.registry_digest,
  }));
}

/**
 * The capability policy (`profiles/policies.yaml`, named by the profile's
 * `governance.policies_ref`), in the AI-First format (`contracts/ai-first/policies.v3.yaml`):
 * a default decision and rules `{principal, capabilities[], action, conditions?}` evaluated in
 * order, first match wins. Patterns are checked after decoding (core/policy.ts) so that a bad one
 * gets its own reason code.
 */
import { Schema } from "effect";
import { NonEmptyString } from "./common.ts";

/** What a rule (or the default) decides. */
export const PolicyAction = Schema.Literals(["ALLOW", "DENY", "REQUIRE_APPROVAL"]);
export type PolicyAction = typeof PolicyAction.Type;

/** The facts of a request a rule may be narrowed to (each must equal one of the listed values). */
export const CONDITION_KEYS = ["profile_id", "privacy_tier", "source"] as const;
export type ConditionKey = typeof CONDITION_KEYS[number];

const ConditionValue = Schema.Union([NonEmptyString, Schema.Array(NonEmptyString)]);

/** One rule. */
export const PolicyRule = Schema.Struct({
  principal: Schema.String,
  capabilities: Schema.Array(Schema.String).check(
    Schema.isMinLength(1, { expected: "at least one capability pattern" }),
  ),
  action: PolicyAction,
  conditions: Schema.optionalKey(Schema.Struct({
    profile_id: Schema.optionalKey(ConditionValue),
    privacy_tier: Schema.optionalKey(ConditionValue),
    source: Schema.optionalKey(ConditionValue),
  })),
});
export type PolicyRule = typeof PolicyRule.Type;

/** The policy file. `default` is DENY when absent (fail-closed). */
export const PolicyFile = Schema.Struct({
  default: Schema.optionalKey(PolicyAction),
  rules: Schema.optionalKey(Schema.Array(PolicyRule)),
});
export type PolicyFile = typeof PolicyFile.Type;

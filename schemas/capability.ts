/**
 * The capability registry (`profiles/capabilities.yaml`, named by the profile's
 * `governance.capabilities_ref`): every action the runtime or an operator can take, declared with
 * its operation type, side effects, compensation and risk, in the AI-First capability format
 * (`contracts/ai-first/capabilities/`). The risk consistency rules are checked after decoding, in
 * core/capabilities.ts, because they relate fields to each other.
 */
import { Schema } from "effect";
import { NonEmptyString } from "./common.ts";

/** What a capability does to the world. */
export const OperationType = Schema.Literals(["READ", "WRITE", "DELETE", "EXECUTE", "NETWORK"]);
export type OperationType = typeof OperationType.Type;

/** How bad it is when the capability is misused; HIGH and CRITICAL need an approval to run. */
export const RiskLevel = Schema.Literals(["LOW", "MEDIUM", "HIGH", "CRITICAL"]);
export type RiskLevel = typeof RiskLevel.Type;

/** A capability id: dotted lower-case words, e.g. `wsp.stream`, `deadletter.purge`. */
export const CapabilityId = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, {
    expected: "a dotted lower-case capability id such as wsp.stream",
  }),
);

/** What the capability changes, and whether that can be undone. */
export const SideEffects = Schema.Struct({
  reversible: Schema.Boolean,
  scope: Schema.Literals(["local", "network", "external"]),
  description: NonEmptyString,
});

/** How the capability's effect is undone, and by which capability. */
export const Compensation = Schema.Struct({
  supported: Schema.Boolean,
  strategy: Schema.Literals(["automatic", "manual", "none"]),
  capability_id: Schema.optionalKey(Schema.NullOr(CapabilityId)),
});

/** The declared risk and why. */
export const Risk = Schema.Struct({
  level: RiskLevel,
  justification: NonEmptyString,
  requires_approval: Schema.Boolean,
});

/** One parameter the capability takes. */
export const CapabilityParameter = Schema.Struct({
  name: NonEmptyString,
  type: NonEmptyString,
  description: NonEmptyString,
  required: Schema.Boolean,
  default: Schema.optionalKey(Schema.Unknown),
});

/** One capability. */
export const Capability = Schema.Struct({
  id: CapabilityId,
  name: NonEmptyString,
  description: NonEmptyString,
  operation_type: OperationType,
  side_effects: SideEffects,
  compensation: Compensation,
  risk: Risk,
  parameters: Schema.Array(CapabilityParameter),
});
export type Capability = typeof Capability.Type;

/** The registry file. */
export const CapabilityFile = Schema.Struct({
  version: NonEmptyString,
  capabilities: Schema.Array(Capability),
});
export type CapabilityFile = typeof CapabilityFile.Type;

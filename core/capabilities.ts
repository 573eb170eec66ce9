/**
 * The capability registry: `profiles/capabilities.yaml` decoded, its ids unique, and each
 * capability's risk consistent with what it does. The three risk rules are the AI-First
 * runtime's, checked in its order with its messages, so a registry that passes there passes
 * here: irreversible side effects need HIGH or CRITICAL; DELETE needs HIGH or CRITICAL;
 * irreversible without compensation needs CRITICAL.
 */
import { Effect } from "effect";
import { sha256Hex } from "./hash.ts";
import { readYamlFile, shownPath } from "./yaml_file.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type Capability, CapabilityFile, type RiskLevel } from "../schemas/capability.ts";

/** A loaded registry: capabilities by id, and a digest of the file they came from. */
export interface CapabilityRegistry {
  /** Absolute path of the file. */
  readonly source: string;
  readonly capabilities: ReadonlyMap<string, Capability>;
  /** sha256 of the file's text. */
  readonly digest: string;
}

const HIGH_OR_CRITICAL: ReadonlyArray<RiskLevel> = ["HIGH", "CRITICAL"];

/**
 * The first risk rule `capability` breaks, as the AI-First runtime words it, or undefined when
 * its risk level is consistent with its side effects, operation type and compensation.
 */
export function riskInconsistency(capability: Capability): string | undefined {
  const level = capability.risk.level;
  const irreversible = !capability.side_effects.reversible;
  if (irreversible && !HIGH_OR_CRITICAL.includes(level)) {
    return "Risk Consistency Check Failed: Irreversible side effects (reversible=false) require " +
      `risk level HIGH or CRITICAL, got ${level}`;
  }
  if (capability.operation_type === "DELETE" && !HIGH_OR_CRITICAL.includes(level)) {
    return "Risk Consistency Check Failed: DELETE operations require risk level HIGH or " +
      `CRITICAL, got ${level}`;
  }
  if (irreversible && !capability.compensation.supported && level !== "CRITICAL") {
    return "Risk Consistency Check Failed: No compensation support + irreversible side effects " +
      `require CRITICAL risk level, got ${level}`;
  }
  return undefined;
}

/**
 * Checks a decoded registry: ids unique (CAPABILITY_DUPLICATE), every risk consistent
 * (CAPABILITY_RISK_INCONSISTENT), every compensation naming a capability of the registry
 * (CAPABILITY_INVALID). `file` names the file in messages.
 */
export function checkRegistry(
  doc: CapabilityFile,
  file: string,
): Effect.Effect<ReadonlyMap<string, Capability>, WorldstreamError> {
  const byId = new Map<string, Capability>();
  for (const [i, capability] of doc.capabilities.entries()) {
    if (byId.has(capability.id)) {
      const first = doc.capabilities.findIndex((c) => c.id === capability.id);
      return Effect.fail(fail(
        "CAPABILITY_DUPLICATE",
        `${file}: capabilities[${i}]: id ${capability.id} is declared twice ` +
          `(first at capabilities[${first}])`,
      ));
    }
    const broken = riskInconsistency(capability);
    if (broken !== undefined) {
      return Effect.fail(
        fail("CAPABILITY_RISK_INCONSISTENT", `${file}: ${capability.id}: ${broken}`),
      );
    }
    byId.set(capability.id, capability);
  }
  for (const capability of byId.values()) {
    const target = capability.compensation.capability_id;
    if (target !== undefined && target !== null && !byId.has(target)) {
      return Effect.fail(fail(
        "CAPABILITY_INVALID",
        `${file}: ${capability.id}: compensation.capability_id names ${target}, ` +
          "which the registry does not declare",
      ));
    }
  }
  return Effect.succeed(byId);
}

/** Loads and checks the registry at `path` (absolute); `field` names the profile key in messages. */
export const loadCapabilities = Effect.fn("loadCapabilities")(function* (
  path: string,
  field = "governance.capabilities_ref",
) {
  const file = shownPath(path);
  const read = yield* readYamlFile(path);
  switch (read.kind) {
    case "missing":
      return yield* fail(
        "CAPABILITY_REGISTRY_MISSING",
        `${field}: the capability registry ${file} does not exist`,
      );
    case "unreadable":
      return yield* fail(
        "CAPABILITY_REGISTRY_MISSING",
        `${field}: cannot read the capability registry ${file}: ${read.problem}`,
      );
    case "syntax":
      return yield* fail("CAPABILITY_INVALID", `${file}: ${read.problem}`);
  }
  const doc = yield* decodeWith(CapabilityFile, "CAPABILITY_INVALID", file)(read.doc);
  const capabilities = yield* checkRegistry(doc, file);
  return { source: path, capabilities, digest: sha256Hex(read.text) } satisfies CapabilityRegistry;
});

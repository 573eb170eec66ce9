/**
 * `worldstream explain --principal X --capability Y [--profile P]`: how the capability policy
 * decides one request, without doing or recording anything. Prints the decision, the rule that
 * matched (its 0-based index and text, or the default), the risk level and where it came from,
 * and why; the last stdout line is `{decision, rule, risk, risk_source, reason}`. Exit 0 whatever
 * the decision; a registry or policy file that does not load fails with its reason code.
 */
import { Effect } from "effect";
import { decide } from "../actors/governance.ts";
import { isPrincipal } from "../core/policy.ts";
import { loadProfile } from "../core/profile.ts";
import { fail } from "../schemas/errors.ts";
import { parseFlags, profileFlag, requireFlag } from "./args.ts";
import type { Outcome } from "./commands.ts";

/** Where a risk level came from, for people. */
const RISK_SOURCE_TEXT = {
  registry: "declared by the capability registry",
  unknown_capability: "assumed: the capability registry does not declare it",
} as const;

/** The `explain` command; `print` receives the lines for people (default: stdout). */
export function explainCommand(
  argv: ReadonlyArray<string>,
  print: (line: string) => void = console.log,
) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      profile: "string",
      principal: "string",
      capability: "string",
    });
    const principal = yield* requireFlag(flags, "principal");
    const capability = yield* requireFlag(flags, "capability");
    if (!isPrincipal(principal)) {
      return yield* fail(
        "BAD_ARGS",
        `--principal ${principal} is not svc:<name>, agent:<name> or user:<name>`,
      );
    }
    const profile = yield* loadProfile(profileFlag(flags));
    const d = decide(principal, capability, { profile });
    print(`decision: ${d.decision}`);
    print(
      d.rule === "default" ? `rule: default (${d.rule_text})` : `rule: ${d.rule} (${d.rule_text})`,
    );
    print(`risk: ${d.risk} (${RISK_SOURCE_TEXT[d.risk_source]})`);
    print(`why: ${d.reason}`);
    return {
      line: {
        decision: d.decision,
        rule: d.rule,
        risk: d.risk,
        risk_source: d.risk_source,
        reason: d.reason,
      },
      ok: true,
    } satisfies Outcome;
  });
}

/**
 * The capability registry, after the AI-First runtime's capability schema cases: the shipped
 * registry loads; each risk consistency rule refuses its case with the runtime's exact message,
 * in the runtime's order; a consistent capability of each kind passes; an unknown operation type,
 * a repeated id, a compensation naming nothing, a syntax error and a missing file each get their
 * code. Files are real YAML in a temp folder, loaded the way a profile loads them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Exit } from "effect";
import { stringify } from "yaml";
import { loadCapabilities, riskInconsistency } from "./capabilities.ts";
import type { Capability } from "../schemas/capability.ts";
import type { WorldstreamError } from "../schemas/errors.ts";

const REPO_PROFILES = new URL("../profiles/", import.meta.url).pathname;
const TMP = await Deno.makeTempDir({ prefix: "capabilities_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

/** A consistent, reversible, LOW capability; `edit` changes what a case needs. */
function capability(id: string, edit: (c: Record<string, unknown>) => void = () => {}) {
  const c: Record<string, unknown> = {
    id,
    name: `Capability ${id}`,
    description: "A capability for a test",
    operation_type: "READ",
    side_effects: { reversible: true, scope: "local", description: "Reads only" },
    compensation: { supported: true, strategy: "automatic", capability_id: null },
    risk: { level: "LOW", justification: "Read-only", requires_approval: false },
    parameters: [],
  };
  edit(c);
  return c;
}

function set(c: Record<string, unknown>, path: string, value: unknown) {
  const keys = path.split(".");
  let node = c as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
  node[keys.at(-1)!] = value;
}

let files = 0;
/** Writes a registry of `capabilities` (or raw text) and loads it. */
async function load(doc: ReadonlyArray<Record<string, unknown>> | string) {
  const path = join(TMP, `capabilities-${++files}.yaml`);
  await Deno.writeTextFile(
    path,
    typeof doc === "string" ? doc : stringify({ version: "1", capabilities: doc }),
  );
  return Effect.runPromiseExit(loadCapabilities(path));
}

async function refused(doc: ReadonlyArray<Record<string, unknown>> | string) {
  const exit = await load(doc);
  assert.ok(Exit.isFailure(exit), "expected the registry to be refused");
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
  return error;
}

const RULE_1 = "Risk Consistency Check Failed: Irreversible side effects (reversible=false) " +
  "require risk level HIGH or CRITICAL, got";
const RULE_2 = "Risk Consistency Check Failed: DELETE operations require risk level HIGH or " +
  "CRITICAL, got";
const RULE_3 = "Risk Consistency Check Failed: No compensation support + irreversible side " +
  "effects require CRITICAL risk level, got";

Deno.test("the shipped registry loads and declares every capability worldstream has", async () => {
  const exit = await Effect.runPromiseExit(
    loadCapabilities(join(REPO_PROFILES, "capabilities.yaml")),
  );
  assert.ok(Exit.isSuccess(exit), String(exit));
  const ids = [...exit.value.capabilities.keys()];
  for (
    const id of [
      "wsp.stream",
      "wsp.replay",
      "checkpoint.reset",
      "deadletter.retry",
      "deadletter.purge",
      "run.pause",
      "run.cancel",
      "run.resume",
      "run.submit",
      "ready.publish",
    ]
  ) assert.ok(ids.includes(id), `${id} is not declared`);
  const purge = exit.value.capabilities.get("deadletter.purge")!;
  assert.equal(purge.operation_type, "DELETE");
  assert.equal(purge.risk.level, "CRITICAL");
  assert.match(exit.value.digest, /^[0-9a-f]{64}$/);
});

Deno.test("rule 1: irreversible side effects below HIGH are refused with the runtime's message", async () => {
  for (const level of ["LOW", "MEDIUM"]) {
    const error = await refused([capability("io.fs.write_file", (c) => {
      set(c, "operation_type", "WRITE");
      set(c, "side_effects.reversible", false);
      set(c, "risk.level", level);
    })]);
    assert.equal(error.reason, "CAPABILITY_RISK_INCONSISTENT");
    assert.ok(error.message.endsWith(`io.fs.write_file: ${RULE_1} ${level}`), error.message);
  }
});

Deno.test("rule 2: a DELETE below HIGH is refused with the runtime's message", async () => {
  const error = await refused([capability("io.fs.delete_file", (c) => {
    set(c, "operation_type", "DELETE");
    set(c, "risk.level", "MEDIUM");
  })]);
  assert.equal(error.reason, "CAPABILITY_RISK_INCONSISTENT");
  assert.ok(error.message.endsWith(`io.fs.delete_file: ${RULE_2} MEDIUM`), error.message);
});

Deno.test("rule 3: irreversible without compensation below CRITICAL is refused with the runtime's message", async () => {
  const error = await refused([capability("db.drop_database", (c) => {
    set(c, "operation_type", "EXECUTE");
    set(c, "side_effects.reversible", false);
    set(c, "compensation", { supported: false, strategy: "none", capability_id: null });
    set(c, "risk.level", "HIGH");
  })]);
  assert.equal(error.reason, "CAPABILITY_RISK_INCONSISTENT");
  assert.ok(error.message.endsWith(`db.drop_database: ${RULE_3} HIGH`), error.message);
});

Deno.test("the rules are checked in order: an irreversible DELETE at LOW breaks rule 1 first", () => {
  const c = capability("db.delete_table", (c) => {
    set(c, "operation_type", "DELETE");
    set(c, "side_effects.reversible", false);
    set(c, "compensation", { supported: false, strategy: "none", capability_id: null });
  }) as unknown as Capability;
  assert.equal(riskInconsistency(c), `${RULE_1} LOW`);
  // Reversible, the same DELETE breaks rule 2; irreversible at HIGH without compensation, rule 3.
  assert.equal(
    riskInconsistency({ ...c, side_effects: { ...c.side_effects, reversible: true } }),
    `${RULE_2} LOW`,
  );
  assert.equal(riskInconsistency({ ...c, risk: { ...c.risk, level: "HIGH" } }), `${RULE_3} HIGH`);
});

Deno.test("consistent capabilities pass: reversible LOW, DELETE at HIGH, irreversible at CRITICAL", async () => {
  const exit = await load([
    capability("net.github.get_repo", (c) => set(c, "operation_type", "NETWORK")),
    capability("io.fs.delete_file", (c) => {
      set(c, "operation_type", "DELETE");
      set(c, "risk.level", "HIGH");
    }),
    capability("io.fs.shred", (c) => {
      set(c, "operation_type", "DELETE");
      set(c, "side_effects.reversible", false);
      set(c, "compensation", { supported: false, strategy: "none", capability_id: null });
      set(c, "risk.level", "CRITICAL");
    }),
    capability("io.fs.move", (c) => {
      set(c, "operation_type", "WRITE");
      set(c, "side_effects.reversible", false);
      set(c, "compensation", { supported: true, strategy: "manual", capability_id: "io.fs.move" });
      set(c, "risk.level", "HIGH");
    }),
  ]);
  assert.ok(Exit.isSuccess(exit), String(exit));
  assert.equal(exit.value.capabilities.size, 4);
});

Deno.test("an unknown operation type is refused CAPABILITY_INVALID naming the field", async () => {
  const error = await refused([
    capability("sys.run_command", (c) => set(c, "operation_type", "SHELL")),
  ]);
  assert.equal(error.reason, "CAPABILITY_INVALID");
  assert.match(error.message, /capabilities\[0\]\.operation_type: /);
});

Deno.test("a risk level outside LOW..CRITICAL and a missing field are refused CAPABILITY_INVALID", async () => {
  const level = await refused([capability("a.b", (c) => set(c, "risk.level", "SEVERE"))]);
  assert.equal(level.reason, "CAPABILITY_INVALID");
  assert.match(level.message, /capabilities\[0\]\.risk\.level: /);
  const missing = await refused([capability("a.b", (c) => delete c.side_effects)]);
  assert.equal(missing.reason, "CAPABILITY_INVALID");
  assert.match(missing.message, /capabilities\[0\]\.side_effects: Missing required key/);
});

Deno.test("a repeated id is refused CAPABILITY_DUPLICATE naming both places", async () => {
  const error = await refused([
    capability("wsp.stream"),
    capability("a.b"),
    capability("wsp.stream"),
  ]);
  assert.equal(error.reason, "CAPABILITY_DUPLICATE");
  assert.match(
    error.message,
    /capabilities\[2\]: id wsp\.stream is declared twice \(first at capabilities\[0\]\)/,
  );
});

Deno.test("a compensation naming an undeclared capability is refused CAPABILITY_INVALID", async () => {
  const error = await refused([
    capability("run.pause", (c) =>
      set(c, "compensation", {
        supported: true,
        strategy: "automatic",
        capability_id: "run.resume",
      })),
  ]);
  assert.equal(error.reason, "CAPABILITY_INVALID");
  assert.match(error.message, /run\.pause: compensation\.capability_id names run\.resume/);
});

Deno.test("a registry that is not YAML, or not there, is refused with its code", async () => {
  const syntax = await refused("version: 1\ncapabilities: [\n");
  assert.equal(syntax.reason, "CAPABILITY_INVALID");
  assert.match(syntax.message, /Not valid YAML/);
  const exit = await Effect.runPromiseExit(loadCapabilities(join(TMP, "nowhere.yaml")));
  assert.ok(Exit.isFailure(exit));
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
  assert.equal(error.reason, "CAPABILITY_REGISTRY_MISSING");
  assert.match(error.message, /nowhere\.yaml does not exist/);
});

/**
 * The one door in the real runtime: a run's plan step asks `authorize` for `wsp.stream` before
 * anything is built or sent. A policy that denies the stream (or a missing policy file) ends the
 * run FAILED POLICY_DENIED with the explanation, an escalated ALLOW ends it APPROVAL_REQUIRED,
 * and the reference gate admits nothing; an allowed run streams every event. Each decision is a
 * row of ws_policy_snapshots (through the WAL) and a policy_decision receipt on the chain.
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Logger, type Scope } from "effect";
import { stringify } from "yaml";
import { loadCapabilities } from "../core/capabilities.ts";
import { loadPolicies } from "../core/policy.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { type RunningIg, startIg } from "../ig/server.ts";
import type { RunRequested } from "../schemas/messages.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { coreLayer } from "./runtime.ts";
import { runConfigOf } from "./run_config.ts";
import { Supervisor } from "./supervisor.ts";
import { WalDrain } from "./wal/drain.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

const TMP = await Deno.makeTempDir({ prefix: "governance_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
const WORLD = join(TMP, "world");
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const generated = await Effect.runPromise(
  genWorld({ out: WORLD, events: 60 }).pipe(Effect.provide(DuckDb.layer())),
);
const ROWS = generated.outputs[TRAFFIC];
const REPO_PROFILES = new URL("../profiles/", import.meta.url).pathname;

const quiet = Logger.layer([]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(quiet))));
}

let sites = 0;

/** `local` in a folder of its own, its policy (and registry) replaced when given. */
function site(governance: { policies?: unknown; capabilities?: unknown } = {}) {
  return Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    cpSync(BARE_DB, join(dir, "pg"), { recursive: true });
    cpSync(BARE_DB, join(dir, "ig"), { recursive: true });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
    });
    const policiesPath = join(dir, "policies.yaml");
    if (typeof governance.policies === "object") {
      Deno.writeTextFileSync(policiesPath, stringify(governance.policies));
    }
    const policy = governance.policies === undefined
      ? loaded.governance.policy
      : yield* loadPolicies(policiesPath);
    const capabilitiesPath = join(dir, "capabilities.yaml");
    if (governance.capabilities !== undefined) {
      Deno.writeTextFileSync(capabilitiesPath, stringify(governance.capabilities));
    }
    const registry = governance.capabilities === undefined
      ? loaded.governance.registry
      : yield* loadCapabilities(capabilitiesPath);
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      governance: { ...loaded.governance, registry, policy },
    };
    const ig = yield* startIg({ db: join(dir, "ig") });
    return { dir, profile, ig };
  });
}

let runs = 0;
function request(extra: Partial<RunRequested> = {}): RunRequested {
  return {
    _tag: "RunRequested",
    source: "operator",
    engine_run_root: WORLD,
    platform_run_id: `platform_20260401T1200${String(++runs).padStart(2, "0")}Z`,
    ...extra,
  };
}

interface Snapshot {
  principal: string;
  capability: string;
  decision: string;
  reason: string;
  snapshot: { rule: number | string; risk: string; risk_source: string };
}

/** Submits `r` to a runtime of the profile; answers its result and the decisions recorded. */
function submit(profile: Profile, ig: RunningIg, r: RunRequested) {
  return Effect.gen(function* () {
    const result = yield* (yield* Supervisor).submit(r);
    yield* (yield* WalDrain).drainNow;
    const pg = yield* Postgres;
    const snapshots = yield* pg.query<Snapshot>(
      "select principal, capability, decision, reason, snapshot from ws_policy_snapshots order by at",
    );
    const receipts = yield* pg.query<{ body: { status: string; actor: string; badges: string[] } }>(
      "select body from ws_receipts where kind = 'policy_decision' order by seq",
    );
    return { result, snapshots, receipts: receipts.map((r) => r.body) };
  }).pipe(
    Effect.provide(coreLayer(runConfigOf(profile, { igUrl: ig.url, speedup: 0 }))),
  );
}

function admitted(ig: RunningIg, platformRunId: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`);
    const all = await res.json() as Record<string, { admitted: number }>;
    return all[platformRunId]?.admitted ?? 0;
  });
}

test(
  "the plan step refuses a stream the policy denies: POLICY_DENIED with the explanation, nothing at the gate",
  Effect.gen(function* () {
    const { profile, ig } = yield* site({
      policies: {
        default: "DENY",
        rules: [
          { principal: "svc:*", capabilities: ["wsp.*"], action: "DENY" },
          { principal: "svc:*", capabilities: ["*"], action: "ALLOW" },
        ],
      },
    });
    const r = request();
    const { result, snapshots, receipts } = yield* submit(profile, ig, r);
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "POLICY_DENIED");
    assert.equal(result.emitted, 0);
    assert.equal(
      result.message,
      "svc:world_stream_producer → wsp.stream: rule 0 (svc:* [wsp.*] DENY) matches first and " +
        "denies it (risk MEDIUM (capability registry))",
    );
    assert.equal(yield* admitted(ig, r.platform_run_id!), 0);
    assert.equal(snapshots.length, 1);
    assert.equal(snapshots[0].principal, "svc:world_stream_producer");
    assert.equal(snapshots[0].capability, "wsp.stream");
    assert.equal(snapshots[0].decision, "DENY");
    assert.equal(snapshots[0].reason, result.message);
    assert.equal(snapshots[0].snapshot.rule, 0);
    assert.equal(snapshots[0].snapshot.risk, "MEDIUM");
    assert.equal(receipts.length, 1);
    assert.equal(receipts[0].status, "hard_block");
    assert.deepEqual(receipts[0].badges, ["policy_denied"]);
    assert.equal(receipts[0].actor, "svc:world_stream_producer");
  }),
);

test(
  "a missing policy file denies the stream, and the gate admits nothing",
  Effect.gen(function* () {
    const { profile, ig } = yield* site({ policies: "missing" });
    const r = request();
    const { result, snapshots } = yield* submit(profile, ig, r);
    assert.equal(result.reason, "POLICY_DENIED");
    assert.match(result.message ?? "", /policies\.yaml does not exist, so every action is denied/);
    assert.equal(yield* admitted(ig, r.platform_run_id!), 0);
    assert.equal(snapshots[0].decision, "DENY");
    assert.equal(snapshots[0].snapshot.rule, "default");
  }),
);

test(
  "an allowed stream on a HIGH capability escalates to APPROVAL_REQUIRED and sends nothing",
  Effect.gen(function* () {
    const shipped = (yield* loadCapabilities(join(REPO_PROFILES, "capabilities.yaml")))
      .capabilities;
    const capabilities = [...shipped.values()].map((c) =>
      c.id === "wsp.stream" ? { ...c, risk: { ...c.risk, level: "HIGH" } } : c
    );
    const { profile, ig } = yield* site({ capabilities: { version: "1", capabilities } });
    const r = request();
    const { result, snapshots, receipts } = yield* submit(profile, ig, r);
    assert.equal(result.reason, "APPROVAL_REQUIRED");
    assert.match(
      result.message ?? "",
      /rule 0 .* allows it, but risk HIGH .* needs an operator's approval/,
    );
    assert.equal(yield* admitted(ig, r.platform_run_id!), 0);
    assert.equal(snapshots[0].decision, "REQUIRE_APPROVAL");
    assert.equal(receipts[0].status, "soft_block");
  }),
);

test(
  "under the shipped policy a READY's sender and the runtime itself stream, each decision recorded",
  Effect.gen(function* () {
    const { profile, ig } = yield* site();
    const fromBus = request({ source: "ready", principal: "agent:scenario_runner" });
    const first = yield* submit(profile, ig, fromBus);
    assert.equal(first.result.status, "STREAMED", first.result.message);
    assert.equal(yield* admitted(ig, fromBus.platform_run_id!), ROWS);
    assert.equal(first.snapshots[0].principal, "agent:scenario_runner");
    assert.equal(first.snapshots[0].decision, "ALLOW");
    assert.equal(first.snapshots[0].snapshot.rule, 1);

    const own = request();
    const second = yield* submit(profile, ig, own);
    assert.equal(second.result.status, "STREAMED", second.result.message);
    assert.equal(second.result.emitted, ROWS);
    assert.deepEqual(
      second.snapshots.map((s) => [s.principal, s.decision, s.snapshot.rule]),
      [["agent:scenario_runner", "ALLOW", 1], ["svc:world_stream_producer", "ALLOW", 0]],
    );
    assert.deepEqual(second.receipts.map((r) => r.status), ["pass", "pass"]);
  }),
);

test(
  "a bus sender the policy denies gets POLICY_DENIED and nothing is sent",
  Effect.gen(function* () {
    const { profile, ig } = yield* site({
      policies: {
        rules: [
          { principal: "agent:rogue", capabilities: ["*"], action: "DENY" },
          { principal: "agent:*", capabilities: ["wsp.stream"], action: "ALLOW" },
        ],
      },
    });
    const r = request({ source: "ready", principal: "agent:rogue" });
    const { result } = yield* submit(profile, ig, r);
    assert.equal(result.reason, "POLICY_DENIED");
    assert.match(result.message ?? "", /^agent:rogue → wsp\.stream: rule 0 /);
    assert.equal(yield* admitted(ig, r.platform_run_id!), 0);
  }),
);

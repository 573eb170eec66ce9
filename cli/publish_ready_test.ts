import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { TestClock } from "effect/testing";
import { sha256Hex } from "../core/hash.ts";
import { interpretReady, type ReadyContext, readyMessageId } from "../core/ready.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { CONTROL_BUS_TOPIC } from "../schemas/control_bus.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { RunFactsView } from "../schemas/run_facts.ts";
import { accepted } from "../schemas/_testing.ts";
import { poll } from "../stores/control_bus_fs.ts";
import { DuckDb } from "../stores/duckdb.ts";
import type { PublishReadyResult } from "../actions/publish_ready.ts";
import { publishReadyCommand } from "./publish_ready.ts";

// One small generated world per file, read by every test; each test publishes into its own bus
// and object store.
const TMP = await Deno.makeTempDir({ prefix: "publish_ready_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const WORLD = join(TMP, "world");
await Effect.runPromise(genWorld({ out: WORLD, events: 200 }).pipe(Effect.provide(DuckDb.layer())));

const TRAFFIC = "s3_event_stream_with_fraud_6B";
let published = 0;

interface Published {
  readonly result: PublishReadyResult;
  readonly busRoot: string;
  readonly storeRoot: string;
  readonly context: ReadyContext;
}

type Json = Record<string, unknown>;

async function publishWorld(...extra: Array<string>): Promise<Published> {
  const dir = join(TMP, `publish-${++published}`);
  const busRoot = join(dir, "bus");
  const storeRoot = join(dir, "store");
  const { line, ok } = await Effect.runPromise(publishReadyCommand([
    "--engine-run-root",
    WORLD,
    "--bus-root",
    busRoot,
    "--object-store-root",
    storeRoot,
    "--profile",
    "local",
    ...extra,
  ]));
  assert.equal(ok, true);
  return {
    result: line as unknown as PublishReadyResult,
    busRoot,
    storeRoot,
    context: { objectStoreRoot: storeRoot },
  };
}

function commandFailure(argv: Array<string>): Promise<WorldstreamError> {
  return Effect.runPromise(Effect.flip(publishReadyCommand(argv)));
}

async function readJson(path: string): Promise<Json> {
  return JSON.parse(await Deno.readTextFile(path));
}

async function editJson(path: string, edit: (doc: Json) => void): Promise<void> {
  const doc = await readJson(path);
  edit(doc);
  await Deno.writeTextFile(path, JSON.stringify(doc));
}

/** Polls the bus the way the listener does and interprets the one message on it. */
async function interpretPublished(p: Published, context: Partial<ReadyContext> = {}) {
  const messages = await Effect.runPromise(poll(p.busRoot, CONTROL_BUS_TOPIC, new Set()));
  assert.equal(messages.length, 1);
  const [message] = messages;
  assert.ok("text" in message);
  return interpretReady(message.text, { ...p.context, ...context });
}

async function rejectionOf(p: Published, context: Partial<ReadyContext> = {}) {
  return Effect.runPromise(Effect.flip(await interpretPublished(p, context)));
}

Deno.test("publish-ready writes run facts and a READY that the READY reader accepts", async () => {
  const p = await publishWorld("--platform-run-id", "platform_20260102T101530Z");
  const { result } = p;
  assert.equal(result.status, "PUBLISHED");
  assert.equal(result.platform_run_id, "platform_20260102T101530Z");
  assert.equal(
    result.facts_view_ref,
    `fraud-platform/platform_20260102T101530Z/sr/run_facts_view/${result.scenario_run_id}.json`,
  );
  assert.equal(result.bus_file, join(p.busRoot, CONTROL_BUS_TOPIC, `${result.message_id}.json`));

  const plan = await Effect.runPromise(await interpretPublished(p));
  assert.equal(plan.message_id, result.message_id);
  assert.equal(plan.platform_run_id, result.platform_run_id);
  assert.equal(plan.scenario_run_id, result.scenario_run_id);
  assert.equal(plan.scenario_id, "baseline_v1");
  assert.equal(plan.engine_run_root, WORLD);
  assert.equal(plan.run_id, result.scenario_run_id);

  // The facts view is a valid contract document whose locators and gate flags are real.
  const facts = accepted(RunFactsView, await readJson(join(p.storeRoot, result.facts_view_ref)));
  const receipt = await readJson(join(WORLD, "run_receipt.json"));
  assert.equal(facts.pins.seed, receipt.seed);
  assert.equal(facts.pins.manifest_fingerprint, receipt.manifest_fingerprint);
  assert.ok(facts.locators.some((l) => l.output_id === TRAFFIC));
  assert.equal(facts.output_roles?.[TRAFFIC], "traffic");
  for (const locator of facts.locators) {
    assert.equal(locator.run_id, receipt.run_id);
    assert.ok((await Deno.stat(join(WORLD, locator.path))).isDirectory, locator.path);
  }
  assert.ok(facts.gate_receipts.length > 0);
  for (const gate of facts.gate_receipts) {
    assert.equal(gate.status, "PASS");
    assert.ok((await Deno.stat(join(WORLD, gate.artifacts!.passed_flag_path!))).isFile);
  }
  assert.equal(facts.bundle_hash, plan.bundle_hash);
  assert.equal(
    plan.message_id,
    readyMessageId({ ...plan, bundle_hash: facts.bundle_hash }),
  );

  const envelope = await readJson(result.bus_file!);
  assert.deepEqual(envelope.attributes, { kind: "READY", run_id: result.platform_run_id });
  assert.equal(envelope.partition_key, result.platform_run_id);
});

Deno.test("without ids, the platform run id comes from the Clock and the scenario run id from it", async () => {
  const dir = join(TMP, "clocked");
  const run = Effect.gen(function* () {
    yield* TestClock.setTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    return yield* publishReadyCommand([
      "--engine-run-root",
      WORLD,
      "--bus-root",
      join(dir, "bus"),
      "--object-store-root",
      join(dir, "store"),
    ]);
  }).pipe(Effect.provide(TestClock.layer()));
  const result = (await Effect.runPromise(run)).line as unknown as PublishReadyResult;
  assert.equal(result.platform_run_id, "platform_20260102T030405Z");
  assert.equal(
    result.scenario_run_id,
    sha256Hex(`platform_20260102T030405Z|${WORLD}`).slice(0, 32),
  );
  const envelope = await readJson(result.bus_file!);
  assert.equal(envelope.published_at_utc, "2026-01-02T03:04:05.678000Z");
});

Deno.test("publishing the same world under the same ids gives the same message", async () => {
  const ids = ["--platform-run-id", "platform_20260102T101530Z"];
  const first = await publishWorld(...ids);
  const second = await publishWorld(...ids);
  assert.equal(first.result.message_id, second.result.message_id);
  const other = await publishWorld("--platform-run-id", "platform_20260102T101531Z");
  assert.notEqual(other.result.message_id, first.result.message_id);
});

Deno.test("publish-ready refuses bad ids and roots that hold no world", async () => {
  const bus = ["--bus-root", join(TMP, "never-bus"), "--object-store-root", join(TMP, "never")];
  const world = ["--engine-run-root", WORLD, ...bus];
  assert.equal((await commandFailure(bus)).reason, "BAD_ARGS");
  const badPlatform = await commandFailure([...world, "--platform-run-id", "platform_x"]);
  assert.equal(badPlatform.reason, "BAD_ARGS");
  assert.match(badPlatform.message, /--platform-run-id/);
  const badScenario = await commandFailure([...world, "--scenario-run-id", "ABC"]);
  assert.equal(badScenario.reason, "BAD_ARGS");
  assert.equal((await commandFailure([...world, "--bogus", "1"])).reason, "BAD_ARGS");
  const missing = await commandFailure(["--engine-run-root", join(TMP, "nowhere"), ...bus]);
  assert.equal(missing.reason, "ENGINE_ROOT_MISSING");
  const empty = join(TMP, "empty-root");
  await Deno.mkdir(empty, { recursive: true });
  const noWorld = await commandFailure(["--engine-run-root", empty, ...bus]);
  assert.equal(noWorld.reason, "RUN_RECEIPT_UNREADABLE");
  await assert.rejects(Deno.stat(join(TMP, "never-bus")), Deno.errors.NotFound);
});

Deno.test("a published READY edited to break its schema fails READY_INVALID", async () => {
  const p = await publishWorld();
  await editJson(p.result.bus_file!, (doc) => {
    (doc.payload as Json).scenario_run_id = "NOT-HEX";
  });
  const rejection = await rejectionOf(p);
  assert.deepEqual([rejection.status, rejection.reason], ["FAILED", "READY_INVALID"]);
  assert.match(rejection.message, /scenario_run_id/);
});

Deno.test("a published READY with another bundle hash fails READY_MESSAGE_ID_MISMATCH", async () => {
  const p = await publishWorld();
  await editJson(p.result.bus_file!, (doc) => {
    (doc.payload as Json).bundle_hash = "0".repeat(64);
  });
  const rejection = await rejectionOf(p);
  assert.deepEqual([rejection.status, rejection.reason], ["FAILED", "READY_MESSAGE_ID_MISMATCH"]);
});

Deno.test("a READY whose facts view is gone fails FACTS_VIEW_MISSING", async () => {
  const p = await publishWorld();
  await Deno.remove(join(p.storeRoot, p.result.facts_view_ref));
  const rejection = await rejectionOf(p);
  assert.deepEqual([rejection.status, rejection.reason], ["FAILED", "FACTS_VIEW_MISSING"]);
  // The facts are looked up under the object store root the reader is given.
  const elsewhere = await rejectionOf(await publishWorld(), { objectStoreRoot: join(TMP, "x") });
  assert.equal(elsewhere.reason, "FACTS_VIEW_MISSING");
});

Deno.test("a READY whose facts view breaks its schema fails FACTS_VIEW_INVALID", async () => {
  const p = await publishWorld();
  await editJson(join(p.storeRoot, p.result.facts_view_ref), (doc) => {
    delete doc.locators;
  });
  const rejection = await rejectionOf(p);
  assert.deepEqual([rejection.status, rejection.reason], ["FAILED", "FACTS_VIEW_INVALID"]);
  assert.match(rejection.message, /locators: Missing required key/);
});

Deno.test("facts for another platform or scenario run fail *_RUN_ID_MISMATCH", async () => {
  const platform = await publishWorld();
  await editJson(join(platform.storeRoot, platform.result.facts_view_ref), (doc) => {
    doc.platform_run_id = "platform_19990101T000000Z";
    (doc.pins as Json).platform_run_id = "platform_19990101T000000Z";
  });
  const p = await rejectionOf(platform);
  assert.deepEqual([p.status, p.reason], ["FAILED", "PLATFORM_RUN_ID_MISMATCH"]);
  assert.equal(p.message_id, platform.result.message_id);

  const scenario = await publishWorld("--scenario-run-id", "1".repeat(32));
  await editJson(join(scenario.storeRoot, scenario.result.facts_view_ref), (doc) => {
    doc.scenario_run_id = "2".repeat(32);
    (doc.pins as Json).scenario_run_id = "2".repeat(32);
  });
  const s = await rejectionOf(scenario);
  assert.deepEqual([s.status, s.reason], ["FAILED", "SCENARIO_RUN_ID_MISMATCH"]);
  assert.equal(s.scenario_run_id, "1".repeat(32));
});

Deno.test("a READY for another platform run than the one served is out of scope", async () => {
  const p = await publishWorld("--platform-run-id", "platform_20260102T101530Z");
  const rejection = await rejectionOf(p, { expectedPlatformRunId: "platform_20260102T101531Z" });
  assert.deepEqual(
    [rejection.status, rejection.reason],
    ["SKIPPED_OUT_OF_SCOPE", "PLATFORM_RUN_OUT_OF_SCOPE"],
  );
  const plan = await Effect.runPromise(
    await interpretPublished(p, { expectedPlatformRunId: "platform_20260102T101530Z" }),
  );
  assert.equal(plan.platform_run_id, "platform_20260102T101530Z");
});

Deno.test("a message on another topic is out of scope", async () => {
  const p = await publishWorld();
  await editJson(p.result.bus_file!, (doc) => {
    doc.topic = "fp.bus.traffic.v1";
  });
  const rejection = await rejectionOf(p);
  assert.deepEqual(
    [rejection.status, rejection.reason],
    ["SKIPPED_OUT_OF_SCOPE", "TOPIC_OUT_OF_SCOPE"],
  );
});

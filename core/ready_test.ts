import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { Effect } from "effect";
import { fixture, withoutKey, withValue } from "../schemas/_testing.ts";
import {
  interpretReady,
  READY_REASONS,
  type ReadyContext,
  readyContext,
  readyMessageId,
  type ReadyPlan,
  type ReadyRejection,
} from "./ready.ts";

type Json = Record<string, unknown>;

// The fixtures are one consistent READY + run facts pair (the message id follows the rule).
const MESSAGE = fixture("worldstream/control_bus_ready.json") as Json;
const FACTS = fixture("worldstream/run_facts_view.json") as Json;
const READY = MESSAGE.payload as Json;
const FACTS_REF = READY.facts_view_ref as string;
const OTHER_HEX32 = "f".repeat(32);

const STORE = await Deno.makeTempDir({ prefix: "ready_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(STORE, { recursive: true }));
let stores = 0;

/** A fresh object store holding `facts` at the fixture's facts_view_ref (none when undefined). */
async function storeWith(facts: unknown, ref = FACTS_REF): Promise<string> {
  const root = join(STORE, `store-${++stores}`);
  await Deno.mkdir(root, { recursive: true });
  if (facts !== undefined) {
    const path = join(root, ref);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, typeof facts === "string" ? facts : JSON.stringify(facts));
  }
  return root;
}

/** `message` with its READY (and envelope) message id recomputed by the rule. */
function signed(message: unknown): Json {
  const copy = structuredClone(message) as Json;
  const payload = copy.payload as Json & Parameters<typeof readyMessageId>[0];
  payload.message_id = readyMessageId(payload);
  copy.message_id = payload.message_id;
  return copy;
}

interface Case {
  readonly message?: unknown;
  readonly facts?: unknown;
  readonly context?: Partial<ReadyContext>;
}

async function contextFor(c: Case): Promise<ReadyContext> {
  const facts = "facts" in c ? c.facts : FACTS;
  return { objectStoreRoot: await storeWith(facts), ...c.context };
}

function textOf(message: unknown): string {
  return typeof message === "string" ? message : JSON.stringify(message);
}

async function accepted(c: Case = {}): Promise<ReadyPlan> {
  return Effect.runPromise(interpretReady(textOf(c.message ?? MESSAGE), await contextFor(c)));
}

async function rejected(c: Case): Promise<ReadyRejection> {
  const context = await contextFor(c);
  return Effect.runPromise(Effect.flip(interpretReady(textOf(c.message ?? MESSAGE), context)));
}

Deno.test("a consistent READY and run facts view give a plan to stream the named world", async () => {
  const plan = await accepted();
  assert.equal(plan.message_id, MESSAGE.message_id);
  assert.equal(plan.platform_run_id, "platform_20260102T101530Z");
  assert.equal(plan.scenario_run_id, "0123456789abcdef0123456789abcdef");
  assert.equal(plan.scenario_id, "baseline_v1");
  assert.equal(plan.run_id, READY.run_id);
  assert.equal(plan.bundle_hash, READY.bundle_hash);
  assert.equal(
    plan.engine_run_root,
    "s3://fraud-platform/oracle-store/local_full_run-5/89abcdef0123456789abcdef01234567",
  );
  assert.deepEqual(plan.ready, READY);
  assert.deepEqual(plan.facts, FACTS);
});

Deno.test("the engine run root comes from the profile, else READY, else the facts", async () => {
  const override = "/worlds/pinned";
  assert.equal(
    (await accepted({ context: { engineRunRootOverride: override } })).engine_run_root,
    override,
  );

  const readyWithout = signed(withoutKey(MESSAGE, "payload.oracle_pack_ref.engine_run_root"));
  const factsRoot = "/worlds/from-facts";
  const factsWith = withValue(FACTS, "oracle_pack_ref.engine_run_root", factsRoot);
  assert.equal(
    (await accepted({ message: readyWithout, facts: factsWith })).engine_run_root,
    factsRoot,
  );

  const factsWithout = withoutKey(FACTS, "oracle_pack_ref.engine_run_root");
  const absoluteLocator = withValue(
    factsWithout,
    "locators.0.path",
    "s3://bucket/oracle/run-9/data/layer1/1A/outlet_catalogue/seed=1/",
  );
  assert.equal(
    (await accepted({ message: readyWithout, facts: absoluteLocator })).engine_run_root,
    "s3://bucket/oracle/run-9",
  );

  const none = await rejected({ message: readyWithout, facts: factsWithout });
  assert.equal(none.status, "FAILED");
  assert.equal(none.reason, "ENGINE_ROOT_MISSING");
});

Deno.test("a message on another topic is skipped without reading its payload", async () => {
  const other = withValue(withValue(MESSAGE, "topic", "fp.bus.other.v1"), "payload", "opaque");
  const rejection = await rejected({ message: other, facts: undefined });
  assert.equal(rejection.status, "SKIPPED_OUT_OF_SCOPE");
  assert.equal(rejection.reason, "TOPIC_OUT_OF_SCOPE");
  assert.equal(rejection.message_id, MESSAGE.message_id);
});

Deno.test("a message of another kind is skipped; one without a kind is read as READY", async () => {
  const status = await rejected({ message: withValue(MESSAGE, "attributes.kind", "STATUS") });
  assert.equal(status.status, "SKIPPED_OUT_OF_SCOPE");
  assert.equal(status.reason, "KIND_OUT_OF_SCOPE");

  const plan = await accepted({ message: withValue(MESSAGE, "attributes", {}) });
  assert.equal(plan.message_id, MESSAGE.message_id);
});

Deno.test("a message that is not a control-bus envelope fails CONTROL_ENVELOPE_INVALID", async () => {
  for (const message of ["{not json", withoutKey(MESSAGE, "message_id"), [1, 2]]) {
    const rejection = await rejected({ message });
    assert.equal(rejection.status, "FAILED");
    assert.equal(rejection.reason, "CONTROL_ENVELOPE_INVALID");
  }
});

Deno.test("an invalid READY payload fails READY_INVALID naming the field", async () => {
  const rejection = await rejected({
    message: withValue(MESSAGE, "payload.scenario_run_id", "not-hex"),
  });
  assert.equal(rejection.status, "FAILED");
  assert.equal(rejection.reason, "READY_INVALID");
  assert.match(rejection.message, /^READY payload: scenario_run_id: /);
  assert.equal(rejection.message_id, MESSAGE.message_id);

  const extra = await rejected({ message: withValue(MESSAGE, "payload.surprise", 1) });
  assert.equal(extra.reason, "READY_INVALID");
  assert.match(extra.message, /surprise/);
});

Deno.test("a READY whose message id breaks the rule fails READY_MESSAGE_ID_MISMATCH", async () => {
  const otherBundle = withValue(MESSAGE, "payload.bundle_hash", "b".repeat(64));
  const rejection = await rejected({ message: otherBundle });
  assert.equal(rejection.status, "FAILED");
  assert.equal(rejection.reason, "READY_MESSAGE_ID_MISMATCH");
  assert.equal(rejection.platform_run_id, READY.platform_run_id);
  assert.equal(rejection.scenario_run_id, READY.scenario_run_id);

  const envelopeDiffers = await rejected({
    message: withValue(MESSAGE, "message_id", "a".repeat(64)),
  });
  assert.equal(envelopeDiffers.reason, "READY_MESSAGE_ID_MISMATCH");
});

Deno.test("a READY for another platform run is out of scope before its facts are read", async () => {
  const rejection = await rejected({
    facts: undefined,
    context: { expectedPlatformRunId: "platform_20990101T000000Z" },
  });
  assert.equal(rejection.status, "SKIPPED_OUT_OF_SCOPE");
  assert.equal(rejection.reason, "PLATFORM_RUN_OUT_OF_SCOPE");
  assert.equal(rejection.platform_run_id, READY.platform_run_id);

  const plan = await accepted({
    context: { expectedPlatformRunId: READY.platform_run_id as string },
  });
  assert.equal(plan.platform_run_id, READY.platform_run_id);
});

Deno.test("a facts_view_ref outside the object store root is refused", async () => {
  for (const ref of ["../outside.json", "a/../../outside.json", "/etc/passwd", "s3://b/k.json"]) {
    const rejection = await rejected({
      message: signed(withValue(MESSAGE, "payload.facts_view_ref", ref)),
    });
    assert.equal(rejection.status, "FAILED");
    assert.equal(rejection.reason, "FACTS_VIEW_REF_INVALID", ref);
  }
});

Deno.test("missing or invalid run facts fail FACTS_VIEW_MISSING / FACTS_VIEW_INVALID", async () => {
  const missing = await rejected({ facts: undefined });
  assert.equal(missing.status, "FAILED");
  assert.equal(missing.reason, "FACTS_VIEW_MISSING");
  assert.match(missing.message, /does not exist/);

  const malformed = await rejected({ facts: "{oops" });
  assert.equal(malformed.reason, "FACTS_VIEW_INVALID");
  assert.match(malformed.message, /Malformed JSON/);

  const badSeed = await rejected({ facts: withValue(FACTS, "pins.seed", -1) });
  assert.equal(badSeed.reason, "FACTS_VIEW_INVALID");
  assert.match(badSeed.message, /pins\.seed: /);
});

Deno.test("facts for another platform or scenario run fail *_RUN_ID_MISMATCH", async () => {
  const otherPlatform = "platform_20260102T101531Z";
  for (
    const facts of [
      withValue(
        withValue(FACTS, "platform_run_id", otherPlatform),
        "pins.platform_run_id",
        otherPlatform,
      ),
      withValue(FACTS, "pins.platform_run_id", otherPlatform),
    ]
  ) {
    const rejection = await rejected({ facts });
    assert.equal(rejection.status, "FAILED");
    assert.equal(rejection.reason, "PLATFORM_RUN_ID_MISMATCH");
  }
  for (
    const facts of [
      withValue(
        withValue(FACTS, "scenario_run_id", OTHER_HEX32),
        "pins.scenario_run_id",
        OTHER_HEX32,
      ),
      withValue(FACTS, "scenario_run_id", OTHER_HEX32),
    ]
  ) {
    const rejection = await rejected({ facts });
    assert.equal(rejection.reason, "SCENARIO_RUN_ID_MISMATCH");
  }
});

Deno.test("facts pinned to another world fail WORLD_KEY_MISMATCH naming the fields", async () => {
  const otherWorld = withValue(
    withValue(FACTS, "pins.parameter_hash", "9".repeat(64)),
    "pins.scenario_id",
    "other_v1",
  );
  const rejection = await rejected({ facts: otherWorld });
  assert.equal(rejection.status, "FAILED");
  assert.equal(rejection.reason, "WORLD_KEY_MISMATCH");
  assert.match(rejection.message, /parameter_hash, scenario_id/);

  const packScenario = await rejected({
    facts: withValue(FACTS, "oracle_pack_ref.scenario_id", "other_v1"),
  });
  assert.equal(packScenario.reason, "WORLD_KEY_MISMATCH");
});

Deno.test("every reason a rejection carries is a documented reason code", async () => {
  const cases: ReadonlyArray<Case> = [
    { message: "{" },
    { message: withValue(MESSAGE, "topic", "x") },
    { message: withValue(MESSAGE, "attributes.kind", "STATUS") },
    { message: withValue(MESSAGE, "payload.run_id", 1) },
    { facts: undefined },
  ];
  for (const c of cases) {
    const rejection = await rejected(c);
    const known: ReadonlyArray<string> = READY_REASONS[rejection.status];
    assert.ok(known.includes(rejection.reason), rejection.reason);
  }
});

Deno.test("a profile's READY context reads facts under its runs root", () => {
  const context = readyContext(
    {
      wiring: {
        oracle_engine_run_root: "/worlds/w1",
        control_bus: { kind: "file", topic: "fp.bus.control.v1", root: "bus" },
      },
      paths: { runsRoot: "/srv/runs" },
    } as unknown as Parameters<typeof readyContext>[0],
    {
      expectedPlatformRunId: "platform_20260101T000000Z",
    },
  );
  assert.deepEqual(context, {
    objectStoreRoot: "/srv/runs",
    topic: "fp.bus.control.v1",
    engineRunRootOverride: "/worlds/w1",
    expectedPlatformRunId: "platform_20260101T000000Z",
  });
});

Deno.test("a plan carries the pins READY and its facts vouch for, for the world check", async () => {
  const plan = await accepted();
  const pins = FACTS.pins as Json;
  assert.deepEqual(plan.pins, {
    manifest_fingerprint: pins.manifest_fingerprint,
    parameter_hash: pins.parameter_hash,
    seed: pins.seed,
    scenario_id: pins.scenario_id,
    oracle_pack_id: (READY.oracle_pack_ref as Json).oracle_pack_id,
  });
});

Deno.test("READY and facts naming different oracle packs fail WORLD_KEY_MISMATCH", async () => {
  const rejection = await rejected({
    facts: withValue(FACTS, "oracle_pack_ref.oracle_pack_id", "e".repeat(64)),
  });
  assert.equal(rejection.reason, "WORLD_KEY_MISMATCH");
  assert.match(rejection.message, /oracle_pack_ref\.oracle_pack_id/);
});

Deno.test("run facts linked to a file outside the object store root fail PATH_ESCAPES_ROOT", async () => {
  const root = await storeWith(undefined);
  const away = join(STORE, `outside-${stores}.json`);
  await Deno.writeTextFile(away, JSON.stringify(FACTS));
  await Deno.mkdir(dirname(join(root, FACTS_REF)), { recursive: true });
  await Deno.symlink(away, join(root, FACTS_REF));
  const rejection = await Effect.runPromise(
    Effect.flip(interpretReady(textOf(MESSAGE), { objectStoreRoot: root })),
  );
  assert.equal(rejection.status, "FAILED");
  assert.equal(rejection.reason, "PATH_ESCAPES_ROOT");
  assert.match(rejection.message, /\(facts_view_ref\) resolves to .*outside-\d+\.json, outside/);

  // A link that stays inside the root is followed.
  const inside = await storeWith(undefined);
  const target = join(inside, "facts-copy.json");
  await Deno.writeTextFile(target, JSON.stringify(FACTS));
  await Deno.mkdir(dirname(join(inside, FACTS_REF)), { recursive: true });
  await Deno.symlink(target, join(inside, FACTS_REF));
  const plan = await Effect.runPromise(
    interpretReady(textOf(MESSAGE), { objectStoreRoot: inside }),
  );
  assert.equal(plan.message_id, MESSAGE.message_id);
});

import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { Effect, Result } from "effect";
import { genWorld } from "../scripts/gen_world.ts";
import { OracleStore } from "./oracle.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { DuckDb } from "./duckdb.ts";
import { sha256Hex } from "../core/hash.ts";
import { resolveOutput, resolveWorld, type World, type WorldOptions } from "./world.ts";

// One small generated world per file; every test works on its own copy.
const TMP = await Deno.makeTempDir({ prefix: "world_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const GENERATED = join(TMP, "generated");
await Effect.runPromise(
  genWorld({ out: GENERATED, events: 300 }).pipe(Effect.provide(DuckDb.layer())),
);

const STRICT: WorldOptions = { strict: true, requireGatePass: true };
const LENIENT: WorldOptions = { strict: false, requireGatePass: true };
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const SCENARIO = "baseline_v1";
const RECEIPT = "run_receipt.json";
const MANIFEST = "_oracle_pack_manifest.json";
const SEAL = "_SEALED.json";

let copies = 0;

/** A private copy of the generated world, under a folder named `name`. */
async function freshWorld(name = `world-${++copies}`): Promise<string> {
  const root = join(TMP, name);
  await cp(GENERATED, root, { recursive: true });
  return root;
}

/** Every file and folder under `root` with its size, so a test can see that nothing changed. */
async function tree(root: string, prefix = ""): Promise<Array<string>> {
  const out: Array<string> = [];
  try {
    for await (const entry of Deno.readDir(join(root, prefix))) {
      const rel = join(prefix, entry.name);
      if (entry.isDirectory) out.push(`${rel}/`, ...await tree(root, rel));
      else out.push(`${rel} ${(await Deno.stat(join(root, rel))).size}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
  }
  return out.sort();
}

type Json = Record<string, unknown>;

async function readJson(root: string, rel: string): Promise<Json> {
  return JSON.parse(await Deno.readTextFile(join(root, rel)));
}

async function editJson(root: string, rel: string, edit: (doc: Json) => void): Promise<void> {
  const doc = await readJson(root, rel);
  edit(doc);
  await Deno.writeTextFile(join(root, rel), JSON.stringify(doc));
}

/** The pack id rule of the platform, so an edited manifest can still be self-consistent. */
function packId(m: Json): string {
  const k = m.world_key as Json;
  return sha256Hex(
    `${k.manifest_fingerprint}|${k.parameter_hash}|${k.scenario_id}|${k.seed}|${m.engine_release}|${m.catalogue_digest}|${m.gate_map_digest}`,
  );
}

async function resolve(
  root: string,
  options: WorldOptions,
  outputId?: string,
): Promise<Result.Result<World, WorldstreamError>> {
  const world = resolveWorld(root, options).pipe(
    Effect.provide(OracleStore.layer),
    Effect.tap((w): Effect.Effect<unknown, WorldstreamError> =>
      outputId === undefined ? Effect.void : resolveOutput(w, outputId)
    ),
  );
  return await Effect.runPromise(Effect.result(world));
}

async function resolveOk(root: string, options: WorldOptions): Promise<World> {
  const result = await resolve(root, options);
  if (Result.isFailure(result)) assert.fail(`${result.failure.reason}: ${result.failure.message}`);
  return result.success;
}

/** Resolves `root` (and `outputId`), expects `reason`, and checks the world was left untouched. */
async function refused(
  root: string,
  options: WorldOptions,
  reason: string,
  outputId?: string,
): Promise<WorldstreamError> {
  const before = await tree(root);
  const result = await resolve(root, options, outputId);
  if (Result.isSuccess(result)) assert.fail(`Expected ${reason}, but ${root} resolved`);
  assert.equal(result.failure.reason, reason, result.failure.message);
  assert.deepEqual(await tree(root), before, "the refused world was modified");
  return result.failure;
}

Deno.test("a generated world resolves strictly to its receipt's world key and sealed pack", async () => {
  const root = await freshWorld();
  const receipt = await readJson(root, RECEIPT);
  const manifest = await readJson(root, MANIFEST);
  const world = await resolveOk(root, STRICT);
  assert.deepEqual(world.worldKey, {
    manifest_fingerprint: receipt.manifest_fingerprint,
    parameter_hash: receipt.parameter_hash,
    seed: receipt.seed,
    scenario_id: SCENARIO,
  });
  assert.equal(world.engineRunRoot, root);
  assert.equal(world.sealed, true);
  assert.equal(world.traceId, manifest.oracle_pack_id);
  const output = await Effect.runPromise(resolveOutput(world, TRAFFIC));
  assert.equal(output.entry.output_id, TRAFFIC);
  assert.equal(output.parts.length, 3);
  assert.deepEqual([...output.parts].sort(), output.parts);
  for (const part of output.parts) {
    assert.ok(part.startsWith(`${root}/data/`) && part.endsWith(".parquet"), part);
  }
});

Deno.test("a missing engine run root fails ENGINE_ROOT_MISSING", async () => {
  const root = join(TMP, "does-not-exist");
  await refused(root, STRICT, "ENGINE_ROOT_MISSING");
  await refused("", STRICT, "ENGINE_ROOT_MISSING");
  const file = join(await freshWorld(), RECEIPT);
  await refused(file, STRICT, "ENGINE_ROOT_MISSING");
});

Deno.test("an engine run root containing a quote fails ENGINE_ROOT_INVALID", async () => {
  for (const name of ["it's-a-world", 'say-"world"']) {
    const root = await freshWorld(name);
    await refused(root, STRICT, "ENGINE_ROOT_INVALID");
  }
});

Deno.test("a missing run receipt fails RUN_RECEIPT_UNREADABLE", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, RECEIPT));
  await refused(root, STRICT, "RUN_RECEIPT_UNREADABLE");
});

Deno.test("a run receipt that cannot be read as a file fails RUN_RECEIPT_UNREADABLE", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, RECEIPT));
  await Deno.mkdir(join(root, RECEIPT));
  await refused(root, STRICT, "RUN_RECEIPT_UNREADABLE");
});

Deno.test("a run receipt with garbled JSON fails RUN_RECEIPT_UNREADABLE", async () => {
  for (const text of ['{"run_id": "fc00', "", "[1, 2]", "null"]) {
    const root = await freshWorld();
    await Deno.writeTextFile(join(root, RECEIPT), text);
    await refused(root, STRICT, "RUN_RECEIPT_UNREADABLE");
  }
});

Deno.test("a run receipt field in the wrong format fails RUN_RECEIPT_UNREADABLE naming the field", async () => {
  const cases: Array<[string, unknown]> = [
    ["run_id", "not-hex"],
    ["seed", -1],
    ["seed", "42"],
    ["parameter_hash", "ABC"],
    ["manifest_fingerprint", null],
  ];
  for (const [field, value] of cases) {
    const root = await freshWorld();
    await editJson(root, RECEIPT, (doc) => {
      doc[field] = value;
    });
    const error = await refused(root, STRICT, "RUN_RECEIPT_UNREADABLE");
    assert.match(error.message, new RegExp(field), error.message);
  }
});

Deno.test("a run receipt lacking manifest_fingerprint fails WORLD_KEY_MISSING", async () => {
  const root = await freshWorld();
  await editJson(root, RECEIPT, (doc) => {
    delete doc.manifest_fingerprint;
  });
  const error = await refused(root, STRICT, "WORLD_KEY_MISSING");
  assert.match(error.message, /manifest_fingerprint/);
});

Deno.test("a world with no manifest and no given scenario id fails SCENARIO_ID_MISSING", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, MANIFEST));
  await refused(root, LENIENT, "SCENARIO_ID_MISSING");
  await refused(root, { ...LENIENT, scenarioId: "" }, "SCENARIO_ID_MISSING");
});

Deno.test("a missing pack manifest fails PACK_MANIFEST_MISSING only when the world is strict", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, MANIFEST));
  await refused(root, { ...STRICT, scenarioId: SCENARIO }, "PACK_MANIFEST_MISSING");
  const world = await resolveOk(root, { ...LENIENT, scenarioId: SCENARIO });
  assert.equal(world.manifest, undefined);
  assert.equal(world.worldKey.scenario_id, SCENARIO);
  assert.equal(world.traceId, sha256Hex(root));
});

Deno.test("a garbled pack manifest fails PACK_MANIFEST_INVALID whether or not the world is strict", async () => {
  for (const text of ['{"version": "v0", "oracle_pack', "{}", '{"world_key": 7}']) {
    const root = await freshWorld();
    await Deno.writeTextFile(join(root, MANIFEST), text);
    for (const options of [STRICT, LENIENT]) {
      await refused(root, options, "PACK_MANIFEST_INVALID");
      await refused(root, { ...options, scenarioId: SCENARIO }, "PACK_MANIFEST_INVALID");
    }
  }
});

Deno.test("a pack manifest whose oracle_pack_id does not recompute fails PACK_MANIFEST_INVALID", async () => {
  const root = await freshWorld();
  await editJson(root, MANIFEST, (doc) => {
    doc.engine_release = "someone-else/9.9";
  });
  const error = await refused(root, LENIENT, "PACK_MANIFEST_INVALID");
  assert.match(error.message, /oracle_pack_id/);
});

Deno.test("a pack manifest for another seed than the run receipt fails WORLD_KEY_MISMATCH", async () => {
  const root = await freshWorld();
  await editJson(root, MANIFEST, (doc) => {
    (doc.world_key as Json).seed = 7;
    doc.oracle_pack_id = packId(doc);
  });
  const error = await refused(root, STRICT, "WORLD_KEY_MISMATCH");
  assert.match(error.message, /seed/);
});

Deno.test("a requested scenario id other than the manifest's fails WORLD_KEY_MISMATCH", async () => {
  const root = await freshWorld();
  const error = await refused(root, { ...STRICT, scenarioId: "fraud_v2" }, "WORLD_KEY_MISMATCH");
  assert.match(error.message, /scenario_id/);
});

Deno.test("a missing seal fails PACK_NOT_SEALED only when the world is strict", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, SEAL));
  await refused(root, STRICT, "PACK_NOT_SEALED");
  const world = await resolveOk(root, LENIENT);
  assert.equal(world.sealed, false);
});

Deno.test("a SEALED_FAILED seal fails PACK_NOT_SEALED whether or not the world is strict", async () => {
  const root = await freshWorld();
  await editJson(root, SEAL, (doc) => {
    doc.seal_status = "SEALED_FAILED";
  });
  await refused(root, STRICT, "PACK_NOT_SEALED");
  await refused(root, LENIENT, "PACK_NOT_SEALED");
});

Deno.test("a garbled seal fails PACK_NOT_SEALED", async () => {
  for (const text of ['{"seal_status": "SEALED_O', "{}", '{"seal_status": "SEALED_OK"}']) {
    const root = await freshWorld();
    await Deno.writeTextFile(join(root, SEAL), text);
    await refused(root, STRICT, "PACK_NOT_SEALED");
    await refused(root, LENIENT, "PACK_NOT_SEALED");
  }
});

Deno.test("a seal of another pack than the manifest fails PACK_NOT_SEALED", async () => {
  const root = await freshWorld();
  await editJson(root, SEAL, (doc) => {
    doc.oracle_pack_id = "0".repeat(64);
  });
  await refused(root, STRICT, "PACK_NOT_SEALED");
});

Deno.test("an output whose gate has no _passed.flag fails GATE_PASS_MISSING when gates are required", async () => {
  const root = await freshWorld();
  const { manifest_fingerprint } = await readJson(root, RECEIPT);
  await Deno.remove(
    join(
      root,
      `data/layer3/6B/validation/manifest_fingerprint=${manifest_fingerprint}/_passed.flag`,
    ),
  );
  const error = await refused(root, STRICT, "GATE_PASS_MISSING", TRAFFIC);
  assert.match(error.message, /gate\.layer3\.6B\.validation/);
  // An output behind another gate is still readable.
  await resolveOk(root, STRICT).then((w) =>
    Effect.runPromise(resolveOutput(w, "arrival_events_5B"))
  );
  // Without the requirement the flag is not looked at.
  const world = await resolveOk(root, { ...STRICT, requireGatePass: false });
  const output = await Effect.runPromise(resolveOutput(world, TRAFFIC));
  assert.equal(output.parts.length, 3);
});

Deno.test("an output id not in the catalogue fails NO_TRAFFIC_OUTPUTS", async () => {
  const root = await freshWorld();
  await refused(root, STRICT, "NO_TRAFFIC_OUTPUTS", "s9_event_stream_6B");
});

Deno.test("an output id that could escape a path fails OUTPUT_ID_INVALID", async () => {
  const root = await freshWorld();
  for (const id of ["../etc", "/abs", "a'b", "", "s3_event_stream_with_fraud_6B/.."]) {
    await refused(root, STRICT, "OUTPUT_ID_INVALID", id);
  }
});

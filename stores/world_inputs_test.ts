import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { WorldstreamError } from "../schemas/errors.ts";
import { OracleStore } from "./oracle.ts";
import { resolveOutput, resolveWorld as resolveWith, type WorldOptions } from "./world.ts";

/** Resolves a world through the file store. */
const resolveWorld = (root: string, options: WorldOptions) =>
  resolveWith(root, options).pipe(Effect.provide(OracleStore.layer));

// What a world resolves against besides the world itself: the interface pack a profile names
// (`wiring.interface_pack_ref`, any folder) and the scenario id a request names. Each test
// builds the smallest world that gets its input to the check: a run receipt and a copy of the
// bundled pack with one file changed. No parquet is needed, so nothing here opens DuckDB.

const TMP = await Deno.makeTempDir({ prefix: "world_inputs_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BUNDLED = new URL("../profiles/interface_pack/", import.meta.url);
const CATALOGUE = "engine_outputs.catalogue.yaml";
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const RECEIPT = {
  run_id: "0".repeat(32),
  manifest_fingerprint: "a".repeat(64),
  parameter_hash: "b".repeat(64),
  seed: 42,
};

let dirs = 0;

/** A world holding only a run receipt. */
async function world(): Promise<string> {
  const root = join(TMP, `world-${++dirs}`);
  await Deno.mkdir(root);
  await Deno.writeTextFile(join(root, "run_receipt.json"), JSON.stringify(RECEIPT));
  return root;
}

/** A copy of the bundled interface pack, with `edit` applied to the named files' text. */
async function pack(edits: Readonly<Record<string, (text: string) => string | undefined>> = {}) {
  const dir = join(TMP, `pack-${++dirs}`);
  await Deno.mkdir(dir);
  for (const name of [CATALOGUE, "engine_gates.map.yaml", "row_schemas.yaml"]) {
    const text = await Deno.readTextFile(new URL(name, BUNDLED));
    const edited = edits[name] ? edits[name](text) : text;
    if (edited !== undefined) await Deno.writeTextFile(join(dir, name), edited);
  }
  return dir;
}

function options(interfacePackDir: string, extra: Partial<WorldOptions> = {}): WorldOptions {
  return {
    strict: false,
    requireGatePass: false,
    scenarioId: "baseline_v1",
    interfacePackDir,
    ...extra,
  };
}

/** The WorldstreamError `effect` fails with (and fails the test if it succeeds). */
async function failure(effect: Effect.Effect<unknown, unknown>): Promise<WorldstreamError> {
  const error = await Effect.runPromise(Effect.flip(effect));
  assert.ok(error instanceof WorldstreamError, `Expected a WorldstreamError, got ${error}`);
  return error;
}

Deno.test("an interface pack folder without a catalogue fails INTERFACE_PACK_UNREADABLE naming the file", async () => {
  const dir = await pack({ [CATALOGUE]: () => undefined });
  const e = await failure(resolveWorld(await world(), options(dir)));
  assert.equal(e.reason, "INTERFACE_PACK_UNREADABLE");
  assert.match(e.message, new RegExp(`${dir}/${CATALOGUE}`));
});

Deno.test("a catalogue that is not YAML fails INTERFACE_PACK_INVALID naming the file", async () => {
  const dir = await pack({ [CATALOGUE]: (text) => `${text}\n  - output_id: [unclosed\n` });
  const e = await failure(resolveWorld(await world(), options(dir)));
  assert.equal(e.reason, "INTERFACE_PACK_INVALID");
  assert.match(e.message, /engine_outputs\.catalogue\.yaml is not YAML/);
});

Deno.test("a catalogue entry without its primary key fails INTERFACE_PACK_INVALID naming the field", async () => {
  const dir = await pack({
    [CATALOGUE]: (text) => text.replace(/\n {4}primary_key:\n/, "\n    key:\n"),
  });
  const e = await failure(resolveWorld(await world(), options(dir)));
  assert.equal(e.reason, "INTERFACE_PACK_INVALID");
  assert.match(e.message, /engine_outputs\.catalogue\.yaml is invalid: .*primary_key/);
});

Deno.test("a requested scenario id that could leave its folder fails WORLD_KEY_INVALID naming the field", async () => {
  for (const scenarioId of ["../baseline", "a/b", "base line"]) {
    const e = await failure(resolveWorld(await world(), options(await pack(), { scenarioId })));
    assert.equal(e.reason, "WORLD_KEY_INVALID", scenarioId);
    assert.match(e.message, /scenario_id/);
  }
});

Deno.test("an output whose catalogue path template leaves the run root fails PATH_ESCAPES_ROOT", async () => {
  const dir = await pack({
    [CATALOGUE]: (text) =>
      text.replace(
        /path_template: data\/layer3\/6B\/s3_event_stream_with_fraud_6B\//,
        "path_template: ../../elsewhere/",
      ),
  });
  const resolved = await Effect.runPromise(resolveWorld(await world(), options(dir)));
  const e = await failure(resolveOutput(resolved, TRAFFIC));
  assert.equal(e.reason, "PATH_ESCAPES_ROOT");
  assert.match(e.message, /"\.\.\/\.\.\/elsewhere\/.*" escapes the engine run root/);
});

Deno.test("a gate flag template that leaves the run root fails PATH_ESCAPES_ROOT when gates are checked", async () => {
  const dir = await pack({
    "engine_gates.map.yaml": (text) =>
      text.replaceAll("passed_flag_path_template: data/", "passed_flag_path_template: /etc/"),
  });
  const resolved = await Effect.runPromise(
    resolveWorld(await world(), options(dir, { requireGatePass: true })),
  );
  const e = await failure(resolveOutput(resolved, TRAFFIC));
  assert.equal(e.reason, "PATH_ESCAPES_ROOT");
  assert.match(e.message, /"\/etc\/.*_passed\.flag" escapes the engine run root/);
});

Deno.test("a pack manifest that cannot be read as a file fails ORACLE_READ_FAILED naming it", async () => {
  const root = await world();
  await Deno.mkdir(join(root, "_oracle_pack_manifest.json"));
  const e = await failure(resolveWorld(root, options(await pack())));
  assert.equal(e.reason, "ORACLE_READ_FAILED");
  assert.match(e.message, new RegExp(`Cannot read ${root}/_oracle_pack_manifest\\.json`));
});

Deno.test("an output folder that is a file fails ORACLE_READ_FAILED naming it", async () => {
  const root = await world();
  const resolved = await Effect.runPromise(resolveWorld(root, options(await pack())));
  // Where the output's parts should be listed, the world holds a file.
  const folder = join(root, "data/layer3/6B/s3_event_stream_with_fraud_6B/seed=42");
  await Deno.mkdir(folder, { recursive: true });
  await Deno.writeTextFile(
    join(folder, `parameter_hash=${RECEIPT.parameter_hash}`),
    "not a folder",
  );
  const e = await failure(resolveOutput(resolved, TRAFFIC));
  assert.equal(e.reason, "ORACLE_READ_FAILED");
  assert.match(e.message, /Cannot list .*parameter_hash=b{64}\//);
});

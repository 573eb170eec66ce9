import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Context, Effect, Layer, Logger, Result } from "effect";
import { genWorld } from "../scripts/gen_world.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Health } from "../actors/health.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { runtimeLayer } from "../actors/runtime.ts";
import { adminApp } from "../api/app.ts";
import { ADMIN_MODULES } from "../api/modules.ts";
import { RuntimeSlot } from "../api/services.ts";
import { DuckDb } from "./duckdb.ts";
import { OracleStore } from "./oracle.ts";
import { Postgres } from "./postgres.ts";
import { resolveOutput, resolveWorld, type WorldOptions } from "./world.ts";
import { buildStreamView } from "./stream_view_build.ts";
import { makeWorldCache, WorldCache } from "./world_cache.ts";

// A runtime checks a world once and reuses the result while the files it read are unchanged
// (stores/world_cache.ts): the cache's counters show the reuse, and a file changed since (same
// size, new modification time) is checked again and refused with the reason it always had.

const TMP = await Deno.makeTempDir({ prefix: "world_cache_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const GENERATED = join(TMP, "generated");
await Effect.runPromise(
  genWorld({ out: GENERATED, events: 300 }).pipe(Effect.provide(DuckDb.layer())),
);
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const OPTIONS: WorldOptions = { strict: false, requireGatePass: true };
let copies = 0;

/**
 * A private copy of the world (with its traffic view built, if asked) whose files were last
 * written an hour ago, so none is racily new.
 */
async function agedWorld(options: { view?: boolean } = {}): Promise<string> {
  const root = join(TMP, `world-${++copies}`);
  await cp(GENERATED, root, { recursive: true });
  await age(root);
  if (options.view) {
    const viewRoot = join(root, "stream_view", "ts_utc");
    await Effect.runPromise(
      Effect.gen(function* () {
        const world = yield* resolveWorld(root, OPTIONS);
        const output = yield* resolveOutput(world, TRAFFIC);
        yield* buildStreamView({
          engineRunRoot: world.engineRunRoot,
          engineRunId: world.runReceipt.run_id,
          worldKey: world.worldKey,
          outputId: TRAFFIC,
          parts: output.parts,
          streamViewRoot: viewRoot,
          rowShape: world.pack.rows.get(TRAFFIC)!,
        });
      }).pipe(Effect.provide(Layer.merge(OracleStore.layer, DuckDb.layer()))),
    );
    await age(viewRoot);
  }
  return root;
}

/** Sets every file under `dir` as last written an hour ago. */
async function age(dir: string) {
  const hourAgo = new Date(Date.now() - 3_600_000);
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) await age(path);
    else await Deno.utime(path, hourAgo, hourAgo);
  }
}

/** Overwrites one byte in the middle of `path`: same size, new content and modification time. */
async function tamper(path: string) {
  using file = await Deno.open(path, { read: true, write: true });
  const size = (await file.stat()).size;
  const at = Math.floor(size / 2);
  const byte = new Uint8Array(1);
  await file.seek(at, Deno.SeekMode.Start);
  await file.read(byte);
  byte[0] ^= 0xff;
  await file.seek(at, Deno.SeekMode.Start);
  await file.write(byte);
  return size;
}

function resolveBoth(cache: ReturnType<typeof makeWorldCache>, root: string) {
  return Effect.gen(function* () {
    const world = yield* cache.world(root, OPTIONS);
    return { world, output: yield* cache.output(world, TRAFFIC) };
  }).pipe(Effect.provide(OracleStore.layer));
}

Deno.test("a world checked once is reused while unchanged, and a part rewritten in place since is checked again and refused OUTPUT_PARTS_MISMATCH", async () => {
  const root = await agedWorld();
  const cache = makeWorldCache();
  const first = await Effect.runPromise(resolveBoth(cache, root));
  assert.deepEqual(await Effect.runPromise(cache.stats), { hits: 0, misses: 2, changed: 0 });
  const again = await Effect.runPromise(resolveBoth(cache, root));
  assert.deepEqual(await Effect.runPromise(cache.stats), { hits: 2, misses: 2, changed: 0 });
  assert.equal(again.world, first.world, "the checked world itself is reused");
  assert.equal(again.output, first.output);

  const part = first.output.parts[0];
  const size = await tamper(part);
  assert.equal((await Deno.stat(part)).size, size);
  for (let i = 0; i < 2; i++) {
    const result = await Effect.runPromise(Effect.result(resolveBoth(cache, root)));
    assert.ok(Result.isFailure(result), "a tampered part is refused, every time");
    assert.equal(result.failure.reason, "OUTPUT_PARTS_MISMATCH");
    assert.match(result.failure.message, /part-00000\.parquet has sha256/);
  }
  // The world was reused (its files are unchanged); the output was checked again, twice.
  assert.deepEqual(await Effect.runPromise(cache.stats), { hits: 4, misses: 4, changed: 1 });
});

Deno.test("a gate bundle file rewritten since the world was checked fails GATE_DIGEST_MISMATCH, and a part replaced by a link out of the root PATH_ESCAPES_ROOT", async () => {
  const root = await agedWorld();
  const cache = makeWorldCache();
  const { output } = await Effect.runPromise(resolveBoth(cache, root));
  const outside = join(TMP, `outside-${copies}.parquet`);
  await Deno.copyFile(output.parts[1], outside);
  await Deno.remove(output.parts[1]);
  await Deno.symlink(outside, output.parts[1]);
  const escaped = await Effect.runPromise(Effect.result(resolveBoth(cache, root)));
  assert.ok(Result.isFailure(escaped));
  assert.equal(escaped.failure.reason, "PATH_ESCAPES_ROOT");

  const other = await agedWorld();
  await Effect.runPromise(resolveBoth(cache, other));
  const report = join(
    other,
    "data/layer3/6B/validation",
    (await Array.fromAsync(Deno.readDir(join(other, "data/layer3/6B/validation"))))[0].name,
    "validation_report.json",
  );
  await tamper(report);
  const changed = await Effect.runPromise(Effect.result(resolveBoth(cache, other)));
  assert.ok(Result.isFailure(changed));
  assert.equal(changed.failure.reason, "GATE_DIGEST_MISMATCH");
});

Deno.test("a file written moments before it was read is not trusted to the cache: the next request checks it again", async () => {
  // A fresh copy: every file was just written, so a rewrite could land in the same tick.
  const root = join(TMP, `world-${++copies}`);
  await cp(GENERATED, root, { recursive: true });
  const cache = makeWorldCache();
  await Effect.runPromise(resolveBoth(cache, root));
  await Effect.runPromise(resolveBoth(cache, root));
  assert.deepEqual(await Effect.runPromise(cache.stats), { hits: 0, misses: 4, changed: 0 });
});

Deno.test("a view's footers are read once while its parts are unchanged, and again after a part is rewritten", async () => {
  const root = await agedWorld({ view: true });
  const viewDir = join(root, "stream_view", "ts_utc", `output_id=${TRAFFIC}`);
  const parts = [...Deno.readDirSync(viewDir)]
    .filter((e) => e.name.endsWith(".parquet"))
    .map((e) => join(viewDir, e.name))
    .sort();
  assert.ok(parts.length > 0);
  const cache = makeWorldCache();
  let reads = 0;
  const read = Effect.sync(() => ++reads);
  assert.equal(await Effect.runPromise(cache.footers(parts, read)), 1);
  assert.equal(await Effect.runPromise(cache.footers(parts, read)), 1, "reused, not read again");
  await tamper(parts[0]);
  assert.equal(
    await Effect.runPromise(cache.footers(parts, read)),
    2,
    "read again after a rewrite",
  );
  assert.deepEqual(await Effect.runPromise(cache.stats), { hits: 1, misses: 2, changed: 1 });
});

const OPERATOR = "operator-token-0123456789";
const quiet = Logger.layer([Logger.make(() => undefined)]);

Deno.test("POST /v1/replay on a running runtime reuses the world it checked; after a part is tampered with, the next replay is refused OUTPUT_PARTS_MISMATCH and the gate hears nothing", async () => {
  const root = await agedWorld({ view: true });
  const dir = join(TMP, "site");
  await Effect.runPromise(Effect.scoped(Layer.build(Postgres.layerPglite(join(dir, "pg")))));
  cpSync(join(dir, "pg"), join(dir, "ig"), { recursive: true });
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
      OBJECT_STORE_ROOT: join(dir, "objects"),
    });
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
    };
    const ig = yield* startIg({ db: join(dir, "ig") });
    const health = yield* Health.make;
    yield* health.markStarted;
    const slot = new RuntimeSlot(health);
    const app = adminApp({ modules: ADMIN_MODULES, tokens: { operator: OPERATOR }, slot });
    const context = yield* Layer.build(
      runtimeLayer(runConfigOf(profile, { igUrl: ig.url, speedup: 0 }), {
        pollIntervalMs: 100,
        health,
      }).pipe(Layer.provide(quiet)),
    );
    slot.attachContext(context);
    const cache = Context.get(context, WorldCache);
    const replay = (n: number) =>
      Effect.promise(async () => {
        const res = await app.request("/v1/replay", {
          method: "POST",
          headers: { Authorization: `Bearer ${OPERATOR}` },
          body: JSON.stringify({
            engine_run_root: root,
            output_id: TRAFFIC,
            from_seq: 100,
            to_seq: 150,
            speedup: 0,
            platform_run_id: `platform_20260701T00000${n}Z`,
          }),
        });
        // deno-lint-ignore no-explicit-any
        return { status: res.status, body: await res.json() as any };
      });
    const gateTotal = Effect.promise(async () => {
      const all = await (await fetch(`${ig.url}/v1/ops/stats`)).json() as Record<
        string,
        Record<string, number>
      >;
      return Object.values(all).reduce((n, c) => n + c.admitted + c.duplicate + c.quarantined, 0);
    });
    /** Waits (deadline 60 s) until the gate has heard `n` events. */
    const heard = (n: number) =>
      Effect.gen(function* () {
        const deadline = performance.now() + 60_000;
        while ((yield* gateTotal) < n) {
          assert.ok(performance.now() < deadline, `the gate did not hear ${n} events in 60 s`);
          yield* Effect.sleep(20);
        }
      });

    const first = yield* replay(1);
    assert.equal(first.status, 202, JSON.stringify(first.body));
    yield* heard(50);
    const afterFirst = yield* cache.stats;
    assert.equal(afterFirst.hits, 0);
    assert.ok(afterFirst.misses >= 3, JSON.stringify(afterFirst));

    const second = yield* replay(2);
    assert.equal(second.status, 202, JSON.stringify(second.body));
    yield* heard(100);
    const afterSecond = yield* cache.stats;
    // World, output, view and the view's row-group map: all four reused, nothing read again.
    assert.equal(afterSecond.hits, 4, JSON.stringify(afterSecond));
    assert.equal(afterSecond.misses, afterFirst.misses);

    const world = yield* cache.world(root, {
      strict: profile.policy.strict_world,
      requireGatePass: profile.policy.require_gate_pass,
      interfacePackDir: profile.paths.interfacePack,
    }).pipe(Effect.provide(OracleStore.layer));
    const { parts } = yield* cache.output(world, TRAFFIC);
    yield* Effect.promise(() => tamper(parts[0]));
    const before = yield* gateTotal;
    const refused = yield* replay(3);
    assert.equal(refused.body.reason, "OUTPUT_PARTS_MISMATCH", JSON.stringify(refused.body));
    assert.ok(refused.status >= 400);
    assert.equal((yield* cache.stats).changed, 1);
    assert.equal(yield* gateTotal, before, "the gate hears nothing of a refused replay");
  })));
});

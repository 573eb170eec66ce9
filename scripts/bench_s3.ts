/**
 * `deno task bench:s3`: building a stream view from a world in S3 (s3rver on loopback) against
 * the same build from local files, measured in one run (goal: ≤ 1.5x). Each S3 round starts with
 * a cold object cache and includes everything `sort` does: listing the root, fetching the
 * objects (ranged GETs in parallel), verifying the gates, sorting, and publishing the view back
 * to S3 (parts, manifest, receipt). The local round resolves, verifies and sorts the same world
 * into a fresh local view folder. A warm-cache S3 build is reported too (not a goal).
 *
 * Flags: --events N (default 1,000,000), --dir D (default /tmp/worldstream-bench-s3; the world is
 * kept there between runs), --rounds R (default 2; the best of R is compared).
 */
import { Effect, Layer } from "effect";
import { join } from "node:path";
import { parseFlags } from "../cli/args.ts";
import { resolveOutput, resolveWorld } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { buildStreamViewAt } from "../stores/stream_view_build.ts";
import { startS3rver, uploadTree } from "../tests/s3rver.ts";
import { genWorld } from "./gen_world.ts";

const OUTPUT = "s3_event_stream_with_fraud_6B";

/** Resolves the world at `root` and builds its traffic view under `viewRoot`; seconds taken. */
function buildOnce(root: string, viewRoot: string, store: Layer.Layer<OracleStore, unknown>) {
  return Effect.gen(function* () {
    const t = performance.now();
    const world = yield* resolveWorld(root, { strict: true, requireGatePass: true });
    const output = yield* resolveOutput(world, OUTPUT);
    const result = yield* buildStreamViewAt({
      engineRunRoot: world.engineRunRoot,
      localRunRoot: world.store.localRoot,
      engineRunId: world.runReceipt.run_id,
      worldKey: world.worldKey,
      outputId: OUTPUT,
      parts: output.parts,
      streamViewRoot: viewRoot,
      rowShape: world.pack.rows.get(OUTPUT)!,
    }, { repair: true });
    if (result.status !== "BUILT") throw new Error(`expected a build, got ${result.status}`);
    return (performance.now() - t) / 1000;
  }).pipe(Effect.provide(store));
}

const bench = Effect.gen(function* () {
  const flags = yield* parseFlags(Deno.args, { events: "string", dir: "string", rounds: "string" });
  const events = Number(flags.events ?? 1_000_000);
  const rounds = Number(flags.rounds ?? 2);
  const dir = String(flags.dir ?? "/tmp/worldstream-bench-s3");
  const root = join(dir, `world-${events}`);

  let t = performance.now();
  yield* genWorld({ out: root, events });
  console.log(
    `world: ${events} events at ${root} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  const s3dir = join(dir, "s3rver");
  yield* Effect.promise(() => Deno.remove(s3dir, { recursive: true }).catch(() => {}));
  const server = yield* startS3rver(s3dir, ["bench"]);
  t = performance.now();
  const files = yield* uploadTree(server.s3, root, "bench", "world");
  console.log(
    `uploaded ${files} files to s3rver (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  const local: Array<number> = [];
  const cold: Array<number> = [];
  let warm = 0;
  for (let i = 0; i < rounds; i++) {
    const localViews = join(dir, `views-local-${i}`);
    yield* Effect.promise(() => Deno.remove(localViews, { recursive: true }).catch(() => {}));
    local.push(yield* buildOnce(root, localViews, OracleStore.layer));

    const cache = join(dir, `cache-${i}`);
    yield* Effect.promise(() => Deno.remove(cache, { recursive: true }).catch(() => {}));
    const store = OracleStore.layerOf({
      endpoint: server.endpoint,
      pathStyle: true,
      cacheDir: cache,
      cacheMaxBytes: 8 * 1024 ** 3,
    });
    const clearViews = Effect.gen(function* () {
      const keys = (yield* server.s3.list("bench", "views/")).map((o) => o.key);
      if (keys.length > 0) yield* server.s3.remove("bench", keys);
    });
    yield* clearViews;
    cold.push(yield* buildOnce("s3://bench/world", "s3://bench/views", store));
    if (i === rounds - 1) {
      yield* clearViews;
      warm = yield* buildOnce("s3://bench/world", "s3://bench/views", store);
    }
    yield* Effect.promise(() => Deno.remove(cache, { recursive: true }).catch(() => {}));
    console.log(
      `round ${i + 1}: local ${local[i].toFixed(2)} s, S3 cold cache ${cold[i].toFixed(2)} s`,
    );
  }
  const ratio = Math.min(...cold) / Math.min(...local);
  const ok = ratio <= 1.5;
  console.log(
    `S3 view build (${events} events, best of ${rounds}): ${
      Math.min(...cold).toFixed(2)
    } s vs local ${Math.min(...local).toFixed(2)} s = ${ratio.toFixed(3)}x (goal <= 1.5x) ${
      ok ? "PASS" : "FAIL"
    }; warm cache ${warm.toFixed(2)} s = ${(warm / Math.min(...local)).toFixed(3)}x`,
  );
  return ok;
});

const ok = await Effect.runPromise(
  Effect.scoped(bench).pipe(Effect.provide(DuckDb.layer({ threads: 2 }))),
);
Deno.exit(ok ? 0 : 1);

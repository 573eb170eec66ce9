import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Logger } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../core/metrics.ts";
import { Metrics } from "../actors/metrics.ts";
import type { RawRoute } from "./route.ts";
import { Sessions } from "./session.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { startIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import type { RunRequested } from "../schemas/messages.ts";
import { parsePrometheus, sampleValue } from "../tests/prometheus.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// `/metrics` over a real stream: the runtime streams a generated world into the reference gate
// twice under one platform run id, from two runs roots (so the second run starts from the first
// row again), feeding one Metrics; the counters must say what the gate says it saw.

const TMP = await Deno.makeTempDir({ prefix: "metrics_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE);
const WORLD = join(TMP, "world");
const generated = await Effect.runPromise(
  genWorld({ out: WORLD, events: 1500 }).pipe(Effect.provide(DuckDb.layer())),
);
const OUTPUTS = ["s3_event_stream_with_fraud_6B", "arrival_events_5B"];
const BATCH = 200;
const quiet = Logger.layer([Logger.make(() => {})]);

function profileAt(dir: string) {
  return Effect.gen(function* () {
    cpSync(BARE, join(dir, "pg"), { recursive: true });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
    });
    return {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [OUTPUTS[0]], context: [OUTPUTS[1]] },
      wiring: { ...loaded.wiring, wsp_courier: { mode: "batch", batch_size: BATCH } },
    } satisfies Profile;
  });
}

/** `GET /metrics` as the admin API answers it, over `metrics`. */
async function scrape(metrics: Metrics["Service"]) {
  const route = metricsRoutes.routes[0] as RawRoute;
  const request = new Request("http://127.0.0.1/metrics");
  const res = await Effect.runPromise(
    route.respond({
      params: {},
      query: {},
      body: undefined,
      principal: undefined,
      request,
      sessions: new Sessions({ operator: "metrics-test-operator-token" }),
      closing: new AbortController().signal,
    }).pipe(
      Effect.provideService(Metrics, metrics),
    ) as Effect.Effect<Response, unknown>,
  );
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  return parsePrometheus(await res.text());
}

Deno.test("GET /metrics counts a real stream as the gate saw it: every event delivered, admitted once, then duplicate on a rerun", async () => {
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      cpSync(BARE, join(TMP, "ig"), { recursive: true });
      const ig = yield* startIg({ db: join(TMP, "ig") });
      const metrics = yield* Metrics.make;
      const run = "platform_20260101T000000Z";
      const request: RunRequested = {
        _tag: "RunRequested",
        source: "operator",
        engine_run_root: WORLD,
        platform_run_id: run,
        scenario_run_id: "0123456789abcdef0123456789abcdef",
      };
      const stream = (dir: string, speedup: number) =>
        Effect.gen(function* () {
          const profile = yield* profileAt(join(TMP, dir));
          const submit = Effect.gen(function* () {
            return yield* (yield* Supervisor).submit(request);
          });
          return yield* submit.pipe(
            Effect.provide(
              coreLayer(runConfigOf(profile, { igUrl: ig.url, speedup }), { metrics }),
            ),
          );
        });
      // The first run paced (its five days in about two seconds), the second as fast as it goes.
      const first = yield* stream("first", 216_000);
      assert.equal(first.status, "STREAMED", first.message);
      const second = yield* stream("second", 0);
      assert.equal(second.status, "STREAMED", second.message);

      const parsed = yield* Effect.promise(() => scrape(metrics));
      const gate = yield* Effect.promise(async () =>
        (await (await fetch(`${ig.url}/v1/ops/stats`)).json())[run]
      );
      let admitted = 0;
      let duplicate = 0;
      for (const id of OUTPUTS) {
        const rows = generated.outputs[id];
        const o = { output_id: id };
        const value = (name: string) => sampleValue(parsed, name, o);
        assert.equal(value("worldstream_events_emitted_total"), 2 * rows, id);
        assert.equal(value("worldstream_events_delivered_total"), 2 * rows, id);
        assert.equal(value("worldstream_events_admitted_total"), rows, id);
        assert.equal(value("worldstream_events_duplicate_total"), rows, id);
        assert.equal(value("worldstream_events_quarantined_total"), 0, id);
        assert.equal(value("worldstream_events_dead_lettered_total"), 0, id);
        assert.equal(value("worldstream_gate_retries_total"), 0, id);
        admitted += value("worldstream_events_admitted_total")!;
        duplicate += value("worldstream_events_duplicate_total")!;
        // Only the paced run has due times: one lateness observation per event of it.
        assert.equal(value("worldstream_pacing_lateness_seconds_count"), rows, id);
        // Batches of at most BATCH, each answered: at least that many requests, each timed.
        const requests = value("worldstream_gate_request_duration_seconds_count")!;
        assert.ok(requests >= 2 * Math.ceil(rows / BATCH), `${id}: ${requests} requests`);
        assert.ok(value("worldstream_gate_request_duration_seconds_sum")! > 0, id);
        // Both runs are over: nothing queued, nothing behind schedule.
        assert.equal(value("worldstream_lane_queued_events"), 0, id);
        assert.equal(value("worldstream_pacing_lag_seconds"), 0, id);
      }
      assert.deepEqual({ admitted, duplicate }, {
        admitted: gate.admitted,
        duplicate: gate.duplicate,
      });
      const types = Object.fromEntries([...parsed.values()].map((f) => [f.name, f.type]));
      assert.deepEqual(types, {
        worldstream_events_emitted_total: "counter",
        worldstream_events_delivered_total: "counter",
        worldstream_events_admitted_total: "counter",
        worldstream_events_duplicate_total: "counter",
        worldstream_events_quarantined_total: "counter",
        worldstream_events_dead_lettered_total: "counter",
        worldstream_gate_retries_total: "counter",
        worldstream_gate_request_duration_seconds: "histogram",
        worldstream_pacing_lateness_seconds: "histogram",
        worldstream_lane_queued_events: "gauge",
        worldstream_pacing_lag_seconds: "gauge",
        worldstream_wal_pending_bytes: "gauge",
        worldstream_wal_pending_records: "gauge",
        worldstream_wal_quota_bytes: "gauge",
        worldstream_run_queue_depth: "gauge",
      });
      // The buckets' upper bounds: lateness has the latency ones and two more for a stalled schedule.
      const bounds = (family: string) =>
        parsed.get(family)!.samples
          .filter((s) => s.name === `${family}_bucket` && s.labels.output_id === OUTPUTS[0])
          .map((s) => s.labels.le);
      const latency = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"]
        .concat(["1", "2.5", "5", "10"]);
      assert.deepEqual(bounds("worldstream_gate_request_duration_seconds"), [...latency, "+Inf"]);
      assert.deepEqual(bounds("worldstream_pacing_lateness_seconds"), [
        ...latency,
        "30",
        "60",
        "+Inf",
      ]);
      for (const f of parsed.values()) {
        assert.ok(f.help && f.help.length > 0, `${f.name} has no HELP`);
        for (const s of f.samples) {
          const names = Object.keys(s.labels).filter((l) => l !== "le").sort();
          const expected = f.name.startsWith("worldstream_wal_") || f.name.endsWith("queue_depth")
            ? []
            : ["output_id"];
          assert.deepEqual(names, expected, `${s.name} labels`);
        }
      }
    }).pipe(Effect.provide(quiet)),
  ));
});

Deno.test("GET /metrics renders before any run: every family with HELP and TYPE, no output series", async () => {
  const metrics = await Effect.runPromise(Metrics.make);
  const parsed = await scrape(metrics);
  assert.equal(parsed.size, 15);
  assert.equal(sampleValue(parsed, "worldstream_run_queue_depth"), 0);
  assert.equal(parsed.get("worldstream_events_emitted_total")?.samples.length, 0);
});

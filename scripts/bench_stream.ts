/**
 * `deno task bench:stream`: the streaming targets, each a ratio against a limit measured in the
 * same run on this machine (never asserted in tests).
 *
 *   throughput  unpaced end to end into the reference IG, checkpoints on
 *               ≥ 50% of min(DuckDB envelope rate, IG accept rate from a raw client)
 *   push        single-envelope /v1/ingest/push with concurrency ≥ 60% of wrk on that endpoint
 *   pacing      ~5,000 events/s for 30 s: p99 lateness < 5 ms, total within 0.5% of schedule
 *   memory      streaming 5M events: RSS < 400 MB, RSS at 5M within 20% of RSS at 1M
 *
 * Every part runs worldstream and the IG as separate processes (`main.ts stream`, `main.ts ig`),
 * as an operator would. Flags: --events N (default 1,000,000), --memory-events N (default
 * 5,000,000; 0 skips), --dir D (default /tmp/worldstream-bench), --only a,b (throughput, push,
 * pacing, memory), --ig-db pglite (default: a private Postgres server via scripts/pg_cluster.sh
 * when it starts, as a real gate has one).
 */
import { Effect } from "effect";
import { join } from "node:path";
import { listFlag, parseFlags } from "../cli/args.ts";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { resolveOutput, resolveWorld } from "../core/world.ts";
import { DuckDb, duckSql } from "../stores/duckdb.ts";
import { openEnvelopeReader } from "../stores/envelope_reader.ts";
import { buildStreamView, streamViewId, viewDir } from "../stores/stream_view_build.ts";
import { genWorld } from "./gen_world.ts";

const OUTPUT = "s3_event_stream_with_fraud_6B";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const results: Array<{ target: string; value: string; goal: string; ok: boolean }> = [];
let runCounter = 0;

const flags = await Effect.runPromise(parseFlags(Deno.args, {
  events: "string",
  "memory-events": "string",
  dir: "string",
  only: "string",
  "ig-db": "string",
}));
const events = Number(flags.events ?? 1_000_000);
const memoryEvents = Number(flags["memory-events"] ?? 5_000_000);
const dir = String(flags.dir ?? "/tmp/worldstream-bench");
const only = new Set(listFlag(flags, "only") ?? ["throughput", "push", "pacing", "memory"]);
const runDir = await Deno.makeTempDir({ prefix: "ws-bench-stream-" });

/**
 * A fresh platform run id per stream, so the IG admits everything again: the bench's start
 * second plus a counter, so runs of the bench never reuse an id in the IG's database.
 */
const benchStart = Math.floor(Date.now() / 1000);
function platformRunId(): string {
  runCounter++;
  return platformRunIdAt((benchStart + runCounter * 86_400) * 1000);
}

/** Makes (or reuses) a world and its s3 view; returns the world root and view facts. */
async function prepareWorld(n: number) {
  const root = join(dir, `world-${n}`);
  return await Effect.runPromise(
    Effect.gen(function* () {
      yield* genWorld({ out: root, events: n });
      const world = yield* resolveWorld(root, { strict: true, requireGatePass: true });
      const output = yield* resolveOutput(world, OUTPUT);
      const viewRoot = join(world.engineRunRoot, "stream_view", "ts_utc");
      yield* buildStreamView({
        engineRunRoot: world.engineRunRoot,
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId: OUTPUT,
        parts: output.parts,
        streamViewRoot: viewRoot,
      });
      return { root: world.engineRunRoot, world, output, vdir: viewDir(viewRoot, OUTPUT) };
    }).pipe(Effect.provide(DuckDb.layer())),
  );
}

/**
 * The IG's database: a private Postgres server when one can be started here (as a real gate
 * has), else PGlite. The bench measures worldstream against the gate it would meet.
 */
async function igDatabase(): Promise<string | undefined> {
  if (flags["ig-db"] === "pglite") return undefined;
  const out = await new Deno.Command("bash", {
    args: [
      new URL("./pg_cluster.sh", import.meta.url).pathname,
      "start",
      join(dir, "ig-pg"),
      "55490",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return out.success ? /DATABASE_URL=(\S+)/.exec(text)?.[1] : undefined;
}
const igDb = await igDatabase();
console.log(`IG database: ${igDb ?? "PGlite"}`);

/** Starts `main.ts ig` on a free port; resolves when healthy. */
async function startIgProcess(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "ig",
      "--port",
      String(port),
      "--db",
      igDb ?? join(runDir, `ig-${port}`),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/v1/ops/health`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Runs `main.ts stream` and returns its result line, RSS samples from its progress logs and wall time. */
async function stream(args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    // As `deno task stream` runs it: V8's old space capped, so garbage is collected, not kept.
    args: ["run", "-A", "--v8-flags=--max-old-space-size=256", MAIN, "stream", ...args],
    env: { WORLDSTREAM_PGLITE_DIR: join(runDir, `pg-${crypto.randomUUID()}`), ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const t0 = performance.now();
  const [out, err] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  await child.status;
  const wall = performance.now() - t0;
  const lines = out.trim().split("\n");
  const result = JSON.parse(lines[lines.length - 1]);
  const progress = err.split("\n").flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j.message === "progress" ? [j.annotations as { emitted: number; rss_mb: number }] : [];
    } catch {
      return [];
    }
  });
  return { result, progress, wall };
}

/** Reads `n` envelopes of the view (platform run `pr`) as JSON texts, in view order. */
async function envelopeTexts(w: Awaited<ReturnType<typeof prepareWorld>>, pr: string, n: number) {
  return await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const cursor = yield* openEnvelopeReader(
        w.vdir,
        {
          streamViewId: streamViewId(w.root, w.world.worldKey.scenario_id, OUTPUT),
          outputId: OUTPUT,
        },
        pinsOf(w, pr),
        optionsOf(w, n),
      );
      const out: string[] = [];
      for (let b = yield* cursor.next; b !== undefined; b = yield* cursor.next) {
        out.push(...b.envelopes);
      }
      return out;
    })).pipe(Effect.provide(DuckDb.layer())),
  );
}

function pinsOf(w: Awaited<ReturnType<typeof prepareWorld>>, pr: string) {
  return {
    manifest_fingerprint: w.world.worldKey.manifest_fingerprint,
    parameter_hash: w.world.worldKey.parameter_hash,
    seed: w.world.worldKey.seed,
    scenario_id: w.world.worldKey.scenario_id,
    run_id: w.world.runReceipt.run_id,
    platform_run_id: pr,
    scenario_run_id: "0".repeat(32),
    trace_id: w.world.traceId,
    output_id: OUTPUT,
  };
}

function optionsOf(w: Awaited<ReturnType<typeof prepareWorld>>, limit?: number) {
  const shape = w.world.pack.rows.get(OUTPUT)!;
  return {
    primaryKey: w.output.entry.primary_key,
    payloadColumns: shape.columns,
    undeclaredColumns: shape.additionalProperties,
    ...(limit === undefined ? {} : { limit }),
  };
}

/** Posts pre-built batches of 500 with `connections` concurrent senders; returns events/s. */
async function rawBatchRate(url: string, texts: string[], connections: number): Promise<number> {
  const bodies: string[] = [];
  for (let i = 0; i < texts.length; i += 500) {
    bodies.push(`{"events":[${texts.slice(i, i + 500).join(",")}]}`);
  }
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await fetch(`${url}/v1/ingest/batch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await res.text();
      if (!res.ok) throw new Error(`IG answered ${res.status}`);
    }
  }));
  return texts.length / ((performance.now() - t0) / 1000);
}

function record(target: string, value: string, goal: string, ok: boolean) {
  results.push({ target, value, goal, ok });
  console.log(`${ok ? "PASS" : "MISS"}  ${target}: ${value} (goal ${goal})`);
}

const w = await prepareWorld(events);
console.log(`world: ${events} events at ${w.root}`);

if (only.has("throughput")) {
  // (a) DuckDB alone: envelope rows of the view handed to JS.
  const duck = await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const cursor = yield* openEnvelopeReader(
        w.vdir,
        {
          streamViewId: streamViewId(w.root, w.world.worldKey.scenario_id, OUTPUT),
          outputId: OUTPUT,
        },
        pinsOf(w, platformRunId()),
        optionsOf(w),
      );
      const t0 = performance.now();
      let n = 0;
      for (let b = yield* cursor.next; b !== undefined; b = yield* cursor.next) {
        n += b.envelopes.length;
      }
      return n / ((performance.now() - t0) / 1000);
    })).pipe(Effect.provide(DuckDb.layer())),
  );
  console.log(`duckdb envelope rows → JS: ${Math.round(duck)} /s`);

  // (b) The IG alone: the same batches from a raw client (best of 1 and 4 connections).
  const ig = await startIgProcess();
  const sample = Math.min(events, 200_000);
  const raw1 = await rawBatchRate(ig.url, await envelopeTexts(w, platformRunId(), sample), 1);
  const raw4 = await rawBatchRate(ig.url, await envelopeTexts(w, platformRunId(), sample), 4);
  const igRate = Math.max(raw1, raw4);
  console.log(
    `IG raw batch accept: ${Math.round(raw1)} /s (1 conn), ${Math.round(raw4)} /s (4 conns)`,
  );

  // (c) worldstream end to end, unpaced, checkpoints on.
  const e2e = await stream([
    "--engine-run-root",
    w.root,
    "--output-ids",
    OUTPUT,
    "--speedup",
    "0",
    "--ig-url",
    ig.url,
    "--platform-run-id",
    platformRunId(),
  ]);
  await ig.stop();
  const rate = e2e.result.emitted / (e2e.result.elapsed_ms / 1000);
  const limit = Math.min(duck, igRate);
  record(
    `unpaced e2e ${e2e.result.emitted} events: ${Math.round(rate)}/s vs limit ${
      Math.round(limit)
    }/s`,
    `${(rate / limit).toFixed(2)}x`,
    ">= 0.50x",
    e2e.result.status === "STREAMED" && rate / limit >= 0.5,
  );
}

if (only.has("push")) {
  const ig = await startIgProcess();
  // wrk posts one envelope per request with a fresh event_id each time (Lua counter).
  const [template] = await envelopeTexts(w, platformRunId(), 1);
  const lua = join(runDir, "push.lua");
  const head = template.slice(0, 13);
  const tail = template.slice(13 + 64);
  await Deno.writeTextFile(
    lua,
    `
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local head = ${JSON.stringify(head)}
local tail = ${JSON.stringify(tail)}
local n = 0
request = function()
  n = n + 1
  local id = string.format("%064x", n + math.random(1, 2^30) * 2^24)
  return wrk.format(nil, "/v1/ingest/push", nil, head .. id .. tail)
end
`,
  );
  const wrk = await new Deno.Command("wrk", {
    args: ["-t2", "-c8", "-d10s", "-s", lua, `${ig.url}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wrkOut = new TextDecoder().decode(wrk.stdout);
  const wrkRate = Number(/Requests\/sec:\s+([0-9.]+)/.exec(wrkOut)?.[1] ?? NaN);
  console.log(`wrk on /v1/ingest/push (8 connections): ${wrkRate} req/s`);
  const push = await stream([
    "--engine-run-root",
    w.root,
    "--output-ids",
    OUTPUT,
    "--speedup",
    "0",
    "--ig-url",
    ig.url,
    "--platform-run-id",
    platformRunId(),
    "--max-events",
    "40000",
  ], { WSP_COURIER_MODE: "push", WSP_PUSH_CONCURRENCY: "8" });
  await ig.stop();
  const rate = push.result.emitted / (push.result.elapsed_ms / 1000);
  record(
    `push mode, concurrency 8: ${Math.round(rate)}/s vs wrk ${Math.round(wrkRate)}/s`,
    `${(rate / wrkRate).toFixed(2)}x`,
    ">= 0.60x",
    push.result.status === "STREAMED" && rate / wrkRate >= 0.6,
  );
}

if (only.has("pacing")) {
  const count = 150_000;
  const span = await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const s = yield* (yield* DuckDb).session;
      const rows = yield* s.rows<{ first: string; last: string }>(duckSql("bench_view_span"), {
        files: [join(w.vdir, "part-00000.parquet")],
        n: count - 1,
      });
      return (Date.parse(rows[0].last) - Date.parse(rows[0].first)) / 1000;
    })).pipe(Effect.provide(DuckDb.layer())),
  );
  const speedup = span / 30;
  const ig = await startIgProcess();
  const paced = await stream([
    "--engine-run-root",
    w.root,
    "--output-ids",
    OUTPUT,
    "--speedup",
    String(speedup),
    "--ig-url",
    ig.url,
    "--platform-run-id",
    platformRunId(),
    "--max-events",
    String(count),
  ]);
  await ig.stop();
  const none = { p50_ms: NaN, p99_ms: NaN, max_ms: NaN };
  const lateness = paced.result.outputs?.[0]?.lateness ?? none;
  const lag = paced.result.outputs?.[0]?.send_lag ?? none;
  console.log(
    `send lag (IG request start − due, includes waiting for the previous answer): p50 ${
      lag.p50_ms.toFixed(2)
    } ms, p99 ${lag.p99_ms.toFixed(2)} ms, max ${lag.max_ms.toFixed(1)} ms`,
  );
  const scheduled = span / speedup * 1000;
  const drift = Math.abs(paced.result.elapsed_ms - scheduled) / scheduled;
  record(
    `pacing ${count} events at ${speedup.toFixed(0)}x (~${
      Math.round(count / 30)
    }/s): lateness p50 ${lateness.p50_ms.toFixed(2)} ms, p99 ${
      lateness.p99_ms.toFixed(2)
    } ms, max ${lateness.max_ms.toFixed(1)} ms`,
    `p99 ${lateness.p99_ms.toFixed(2)} ms`,
    "< 5 ms",
    paced.result.status === "STREAMED" && lateness.p99_ms < 5,
  );
  record(
    `pacing duration ${(paced.result.elapsed_ms / 1000).toFixed(2)} s vs scheduled ${
      (scheduled / 1000).toFixed(2)
    } s`,
    `${(drift * 100).toFixed(3)}% drift`,
    "< 0.5%",
    drift < 0.005,
  );
}

if (only.has("memory") && memoryEvents > 0) {
  const big = await prepareWorld(memoryEvents);
  const ig = await startIgProcess();
  const run = await stream([
    "--engine-run-root",
    big.root,
    "--output-ids",
    OUTPUT,
    "--speedup",
    "0",
    "--ig-url",
    ig.url,
    "--platform-run-id",
    platformRunId(),
  ]);
  await ig.stop();
  const at1m = run.progress.find((p) => p.emitted >= memoryEvents / 5)?.rss_mb ?? NaN;
  const tail = run.progress.filter((p) => p.emitted >= memoryEvents * 0.8).map((p) => p.rss_mb);
  const at5m = tail.length ? Math.max(...tail) : NaN;
  const peak = Math.max(...run.progress.map((p) => p.rss_mb));
  record(
    `memory streaming ${run.result.emitted} events: RSS at 1/5 ${at1m} MB, at end ${at5m} MB, peak ${peak} MB`,
    `peak ${peak} MB, end/1st-fifth ${(at5m / at1m).toFixed(2)}`,
    "< 400 MB, within 1.20",
    run.result.status === "STREAMED" && peak < 400 && at5m / at1m <= 1.2,
  );
}

await Deno.remove(runDir, { recursive: true }).catch(() => {});
if (igDb) {
  await new Deno.Command("bash", {
    args: [new URL("./pg_cluster.sh", import.meta.url).pathname, "stop", join(dir, "ig-pg")],
    stdout: "null",
    stderr: "null",
  }).output();
}
console.log("\nworldstream stream bench");
for (const r of results) {
  console.log(
    `${r.ok ? "PASS" : "MISS"}  ${r.value.padEnd(28)} goal ${r.goal.padEnd(22)} ${r.target}`,
  );
}
Deno.exit(results.every((r) => r.ok) ? 0 : 1);

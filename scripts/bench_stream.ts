/**
 * `deno task bench:stream`: the streaming targets, each a ratio against a limit measured in the
 * same run on this machine (never asserted in tests).
 *
 *   throughput  unpaced end to end into the reference IG, checkpoints on
 *               ≥ 50% of min(DuckDB envelope rate, IG accept rate from a raw client)
 *   push        single-envelope /v1/ingest/push with concurrency ≥ 60% of wrk on that endpoint
 *               (wrk sends only new events: a thread number and a counter make each event_id)
 *   pacing      ~5,000 events/s for 30 s: p99 lateness at hand-over < 5 ms, total within 0.5%
 *               of schedule; and what a user of the replay sees, through a recording proxy in
 *               front of the gate: lateness at the gate (request arrival − due) beside the
 *               gate's own answer time, which bounds it while one request per output is out
 *   memory      streaming 5M events: RSS < 400 MB, RSS at 5M within 20% of RSS at 1M
 *   durability  unpaced with WAL + checkpoints + receipts on ≥ 90% of the same with them off
 *               (WORLDSTREAM_BENCH_DURABILITY=off, bench only), best of 2 each
 *   restart     SIGKILL at ~10% and at ~85% of the view, restart the same command: first new
 *               admission at the IG < 2 s after the restart's spawn (deno start-up shown apart)
 *   budgets     unpaced with governance.budgets rates set far above the stream's rate ≥ 90% of
 *               the same stream with no budgets, best of 2 each
 *   governance  unpaced flow anchors (the output with fields in profiles/minimized_fields.yaml)
 *               with privacy tier minimized (license signed here, pseudonym key), policy and
 *               budgets far above the stream's rate ≥ 90% of the same stream under tier local
 *               with no budgets (the policy check runs in both), best of 2 each
 *   replay      POST /v1/replay of 1,000 events at 90% of a 5M-event view: the gate's first
 *               admission < 1 s after the request (the reader seeks), best of 2
 *   admin       `main.ts run --once --admin-port P` unpaced, with wrk polling the admin API
 *               10 times a second, ≥ 0.95x of the same run without it, best of 2 each
 *
 * Every part runs worldstream and the IG as separate processes (`main.ts stream`, `main.ts ig`),
 * as an operator would. Flags: --events N (default 1,000,000), --memory-events N (default
 * 5,000,000; 0 skips), --dir D (default /tmp/worldstream-bench), --only a,b (throughput, push,
 * pacing, memory, durability, restart, budgets, governance, admin, replay), --ig-db pglite (default: a private Postgres server via
 * scripts/pg_cluster.sh when it starts, as a real gate has one).
 */
import { Effect, Layer } from "effect";
import { cpSync } from "node:fs";
import process from "node:process";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";
import { listFlag, parseFlags } from "../cli/args.ts";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { resolveOutput, resolveWorld } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { DuckDb, duckSql } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { openEnvelopeReader } from "../stores/envelope_reader.ts";
import { buildStreamView, viewDir } from "../stores/stream_view_build.ts";
import { openViewReader, streamViewId } from "../stores/stream_view_read.ts";
import { genWorld } from "./gen_world.ts";
import { createHmac } from "node:crypto";
import { canonicalJson } from "../core/hash.ts";
import { LICENSE_ENV } from "../core/license.ts";
import { PSEUDONYM_KEY_ENV } from "../core/pseudonymize.ts";

const OUTPUT = "s3_event_stream_with_fraud_6B";
/** The bench world's output with fields in the shipped minimized fields file. */
const ANCHOR = "s3_flow_anchor_with_fraud_6B";
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
const only = new Set(
  listFlag(flags, "only") ??
    [
      "throughput",
      "push",
      "pacing",
      "memory",
      "durability",
      "restart",
      "budgets",
      "governance",
      "admin",
      "replay",
    ],
);
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
      const world = yield* resolveWorld(root, { strict: true, requireGatePass: true }).pipe(
        Effect.provide(OracleStore.layer),
      );
      const output = yield* resolveOutput(world, OUTPUT);
      const viewRoot = join(world.engineRunRoot, "stream_view", "ts_utc");
      yield* buildStreamView({
        engineRunRoot: world.engineRunRoot,
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId: OUTPUT,
        parts: output.parts,
        streamViewRoot: viewRoot,
        rowShape: world.pack.rows.get(OUTPUT)!,
      });
      return { root: world.engineRunRoot, world, output, vdir: viewDir(viewRoot, OUTPUT) };
    }).pipe(Effect.provide(DuckDb.layer())),
  );
}

/**
 * The IG's database server: a private Postgres cluster of this bench run, in its temp folder on a
 * port of its own (as a real gate has a server), else PGlite. Not a cluster shared between runs:
 * another bench stopping it would take this run's gates down mid-stream.
 */
async function igServer(): Promise<string | undefined> {
  if (flags["ig-db"] === "pglite") return undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const out = await new Deno.Command("bash", {
      args: [
        PG_CLUSTER,
        "start",
        join(runDir, "ig-pg"),
        String(41000 + Math.floor(Math.random() * 9000)),
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    const url = /DATABASE_URL=(\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1];
    if (out.success && url) return url;
  }
  return undefined;
}
const PG_CLUSTER = new URL("./pg_cluster.sh", import.meta.url).pathname;
const igPg = await igServer();
console.log(`IG database: ${igPg ? `a fresh database per IG on ${igPg}` : "PGlite"}`);

/** Child processes and IG databases still around, for {@link cleanUp}. */
const live = new Set<Deno.ChildProcess>();
const liveDatabases = new Set<() => Promise<void>>();

/** Leaves nothing behind: children, IG databases, the cluster, the temp folder. */
async function cleanUp(): Promise<void> {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
      await child.status;
    } catch {
      // already gone
    }
  }
  for (const drop of liveDatabases) await drop().catch(() => {});
  if (igPg) {
    await new Deno.Command("bash", {
      args: [PG_CLUSTER, "stop", join(runDir, "ig-pg")],
      stdout: "null",
      stderr: "null",
    }).output();
  }
  await Deno.remove(runDir, { recursive: true }).catch(() => {});
}
// Interrupted (Ctrl-C, a timeout's SIGTERM) or failed: an IG database holds gigabytes and a
// cluster a port; leave neither behind.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    console.log(`${signal}: cleaning up`);
    cleanUp().finally(() => Deno.exit(130));
  });
}
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  console.error("bench failed:", e.reason);
  cleanUp().finally(() => Deno.exit(1));
});

/**
 * Runs one statement on the cluster's maintenance database. Only for CREATE/DROP DATABASE of
 * names this bench makes (`<ig|ws>_<digits>_<digits>`), which cannot be parameters.
 */
async function adminExec(statement: string): Promise<void> {
  const admin = new URL(igPg!);
  admin.pathname = "/postgres";
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      yield* (yield* Postgres).exec(statement);
    })).pipe(Effect.provide(Postgres.layerServer(admin.toString(), { max: 1 }))),
  );
}

/**
 * A database of its own on the cluster (`ig` for an IG process, `ws` for worldstream's state),
 * registered for {@link cleanUp}. An IG stores every admitted envelope, so one shared database
 * grew by gigabytes per bench run, filled the disk and slowed the gate down run after run.
 */
async function freshDatabase(
  prefix: "ig" | "ws",
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${benchStart}_${++databaseCounter}`;
  if (!/^(ig|ws)_\d+_\d+$/.test(name)) throw new Error(`Bad database name ${name}`);
  await adminExec(`create database ${name}`);
  const url = new URL(igPg!);
  url.pathname = `/${name}`;
  const drop = async () => {
    await adminExec(`drop database if exists ${name} with (force)`);
    liveDatabases.delete(drop);
  };
  liveDatabases.add(drop);
  return { url: url.toString(), drop };
}
let databaseCounter = 0;

/** Starts `main.ts ig` on a free port; resolves when healthy. */
async function startIgProcess(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const db = igPg ? await freshDatabase("ig") : undefined;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "ig",
      "--port",
      String(port),
      "--db",
      db?.url ?? join(runDir, `ig-${port}`),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  live.add(child);
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
      try {
        child.kill("SIGTERM");
      } catch {
        // It died on its own (e.g. its database went away); the run's result says what failed.
      }
      await child.status;
      live.delete(child);
      await db?.drop();
    },
  };
}

/**
 * An initialised, empty PGlite folder every site starts from a copy of: initdb takes seconds of
 * CPU, and since worldstream opens its database on first use it would run inside the measured
 * stream. A deployment pays it once, not per run.
 */
const PGLITE_TEMPLATE = join(runDir, "pglite-template");
await Effect.runPromise(Effect.scoped(Layer.build(Postgres.layerPglite(PGLITE_TEMPLATE))));

/** Extra environment and the folders of one worldstream "site" (PGlite, runs root with the WAL). */
function siteEnv(env: Record<string, string> = {}): Record<string, string> {
  const id = crypto.randomUUID();
  const pgliteDir = join(runDir, `pg-${id}`);
  cpSync(PGLITE_TEMPLATE, pgliteDir, { recursive: true });
  return {
    WORLDSTREAM_PGLITE_DIR: pgliteDir,
    // A runs root per site: the WAL allows one writer per folder, and other benches may be
    // streaming from this checkout at the same time.
    WORLDSTREAM_RUNS_ROOT: join(runDir, `runs-${id}`),
    ...env,
  };
}

/** The V8 flags `deno task stream` starts worldstream with (read from deno.json, not copied). */
const TASK_V8 = /--v8-flags=(\S+)/.exec(
  JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))).tasks.stream,
)?.[1] ?? "";
/** Extra V8 flags for worldstream (BENCH_V8_FLAGS, comma-separated), to try GC settings. */
const EXTRA_V8 = Deno.env.get("BENCH_V8_FLAGS") ?? "";
const V8_FLAGS = `--v8-flags=${[TASK_V8, EXTRA_V8].filter(Boolean).join(",")}`;

/** Starts `main.ts stream` as `deno task stream` does; `done` has its output and exit status. */
function spawnStream(args: string[], env: Record<string, string>, command = "stream") {
  const child = new Deno.Command(Deno.execPath(), {
    // As `deno task stream` runs it: V8's old space capped, so garbage is collected, not kept.
    args: ["run", "-A", V8_FLAGS, MAIN, command, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child);
  const done = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
  ]).then(([out, err, status]) => {
    live.delete(child);
    return { out, err, status };
  });
  return { child, done };
}

/**
 * CPU seconds (user + system) of this process's children that have exited and been waited for
 * (Linux `cutime + cstime`; NaN elsewhere). Its change across one stream, while the IG still
 * runs, is that stream's CPU.
 */
function childCpuSeconds(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
}

/** The JSON log lines of a worldstream stderr. */
function logLines(err: string): Array<Record<string, unknown>> {
  return err.split("\n").flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return typeof j === "object" && j !== null && "message" in j ? [j] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Runs `main.ts stream` and returns its result line, RSS samples from its progress logs, wall
 * time and CPU seconds.
 */
async function stream(args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const cpu0 = childCpuSeconds();
  const spawned = spawnStream(args, siteEnv(env));
  // Peak RSS of worldstream's own children (PGlite's process), sampled every 500 ms.
  let childPeakMb = 0;
  const sampler = setInterval(() => {
    childPeakMb = Math.max(childPeakMb, childrenRssMb(spawned.child.pid));
  }, 500);
  const { out, err } = await spawned.done.finally(() => clearInterval(sampler));
  const cpu = childCpuSeconds() - cpu0;
  const wall = performance.now() - t0;
  const lines = out.trim().split("\n");
  const result = JSON.parse(lines[lines.length - 1]);
  const progress = logLines(err).flatMap((j) =>
    j.message === "progress" ? [j.annotations as { emitted: number; rss_mb: number }] : []
  );
  return { result, progress, wall, cpu, childPeakMb, err };
}

/** Total RSS (MB) of the live children of process `pid` (Linux /proc; 0 elsewhere). */
function childrenRssMb(pid: number): number {
  try {
    const kids = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/);
    let kb = 0;
    for (const kid of kids.filter(Boolean)) {
      const status = Deno.readTextFileSync(`/proc/${kid}/status`);
      kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    }
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

/** Reads `n` envelopes of the view (platform run `pr`) as JSON texts, in view order. */
async function envelopeTexts(w: Awaited<ReturnType<typeof prepareWorld>>, pr: string, n: number) {
  return await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const cursor = yield* openEnvelopeReader(
        w.vdir,
        {
          streamViewId: streamViewId({
            engineRunId: w.world.runReceipt.run_id,
            worldKey: w.world.worldKey,
            outputId: OUTPUT,
          }),
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
          streamViewId: streamViewId({
            engineRunId: w.world.runReceipt.run_id,
            worldKey: w.world.worldKey,
            outputId: OUTPUT,
          }),
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
  // wrk posts one envelope per request, each with an event_id never sent before: a thread
  // number (set per thread by setup) and the thread's own counter. Random ids from
  // math.random repeated across threads (each thread's Lua state starts from the same seed),
  // so ~46% of the "new" events were duplicates, the gate's cheap path.
  const wrkPr = platformRunId();
  const [template] = await envelopeTexts(w, wrkPr, 1);
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
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  n = n + 1
  local id = string.format("%08x%056x", tid, n)
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
  const wrkRequests = Number(/(\d+) requests in/.exec(wrkOut)?.[1] ?? NaN);
  const wrkCounts = await igCounts(ig.url, wrkPr);
  console.log(
    `wrk on /v1/ingest/push (2 threads, 8 connections): ${wrkRate} req/s; ${wrkRequests} ` +
      `requests, gate: ${wrkCounts.admitted} admitted, ${wrkCounts.duplicate} duplicate`,
  );
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

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` as epoch microseconds. */
function microsOf(tsUtc: string): number {
  return Date.parse(`${tsUtc.slice(0, 19)}Z`) * 1000 + Number(tsUtc.slice(20, 26).padEnd(6, "0"));
}

/** The p-quantile (0..1) of `values` (sorted in place), 0 when empty. */
function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.floor(q * values.length))];
}

/**
 * A recording proxy in front of the IG: what a user of the replay sees. For every ingest request
 * it notes when the request reached it (wall clock, the clock worldstream paces by) and the event
 * times it carries, and how long the IG took to answer it (forward to body read). Forwarding
 * starts before the body is parsed, so recording adds no wait to the gate's answer.
 */
function recordingProxy(target: string) {
  // First arrival of each event id (a retried request brings some again, later).
  const arrivals = new Map<string, { readonly atMs: number; readonly tsUs: number }>();
  const answersMs: number[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const atMs = performance.timeOrigin + performance.now();
      const url = new URL(req.url);
      const body = req.method === "POST" ? await req.text() : undefined;
      const headers = new Headers();
      for (const name of ["content-type", "x-ig-api-key", "x-ig-service-token"]) {
        const value = req.headers.get(name);
        if (value !== null) headers.set(name, value);
      }
      const sentAt = performance.now();
      const forwarded = fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        ...(body === undefined ? {} : { body }),
      }).then(async (res) => ({
        res,
        bytes: await res.arrayBuffer(),
        ms: performance.now() - sentAt,
      }));
      const ingest = url.pathname === "/v1/ingest/batch" || url.pathname === "/v1/ingest/push";
      if (ingest && body !== undefined) {
        const parsed = JSON.parse(body);
        const envelopes: Array<{ event_id: string; ts_utc: string }> =
          url.pathname.endsWith("/batch") ? parsed.events : [parsed];
        for (const e of envelopes) {
          if (!arrivals.has(e.event_id)) {
            arrivals.set(e.event_id, { atMs, tsUs: microsOf(e.ts_utc) });
          }
        }
      }
      const { res, bytes, ms } = await forwarded;
      if (ingest) answersMs.push(ms);
      const out = new Headers();
      for (const name of ["content-type", "retry-after"]) {
        const value = res.headers.get(name);
        if (value !== null) out.set(name, value);
      }
      return new Response(bytes, { status: res.status, headers: out });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    arrivals,
    answersMs,
    stop: () => server.shutdown(),
  };
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
  const proxy = recordingProxy(ig.url);
  const paced = await stream([
    "--engine-run-root",
    w.root,
    "--output-ids",
    OUTPUT,
    "--speedup",
    String(speedup),
    "--ig-url",
    proxy.url,
    "--platform-run-id",
    platformRunId(),
    "--max-events",
    String(count),
  ]);
  await proxy.stop();
  await ig.stop();
  const none = { p50_ms: NaN, p99_ms: NaN, max_ms: NaN };
  const lateness = paced.result.outputs?.[0]?.lateness ?? none;
  const lag = paced.result.outputs?.[0]?.send_lag ?? none;
  console.log(
    `send lag (IG request start − due, includes waiting for the previous answer): p50 ${
      lag.p50_ms.toFixed(2)
    } ms, p99 ${lag.p99_ms.toFixed(2)} ms, max ${lag.max_ms.toFixed(1)} ms`,
  );
  // Lateness at the gate: when the request carrying an event reached the gate minus when the
  // event was due (W0 + (ts − T0) / speedup, the anchor from worldstream's stream_start line).
  const anchor = logLines(paced.err).find((j) => j.message === "stream_start")?.annotations as
    | { pacing_w0_ms: number; pacing_t0_us: number; speedup: number }
    | undefined;
  const atGate: number[] = [];
  if (anchor !== undefined) {
    for (const a of proxy.arrivals.values()) {
      const due = anchor.pacing_w0_ms + (a.tsUs - anchor.pacing_t0_us) / 1000 / anchor.speedup;
      atGate.push(Math.max(0, a.atMs - due));
    }
  }
  const gate = {
    events: atGate.length,
    p50: quantile(atGate, 0.5),
    p99: quantile(atGate, 0.99),
    max: atGate.length ? atGate[atGate.length - 1] : NaN,
  };
  const answer = {
    requests: proxy.answersMs.length,
    p50: quantile(proxy.answersMs, 0.5),
    p99: quantile(proxy.answersMs, 0.99),
  };
  console.log(
    `at the gate (recording proxy): lateness p50 ${gate.p50.toFixed(2)} ms, p99 ${
      gate.p99.toFixed(2)
    } ms, max ${gate.max.toFixed(1)} ms over ${gate.events} events; the gate's answer time p50 ${
      answer.p50.toFixed(2)
    } ms, p99 ${answer.p99.toFixed(2)} ms over ${answer.requests} requests`,
  );
  const scheduled = span / speedup * 1000;
  const drift = Math.abs(paced.result.elapsed_ms - scheduled) / scheduled;
  record(
    `pacing ${count} events at ${speedup.toFixed(0)}x (~${
      Math.round(count / 30)
    }/s): lateness p50 ${lateness.p50_ms.toFixed(2)} ms, p99 ${
      lateness.p99_ms.toFixed(2)
    } ms, max ${lateness.max_ms.toFixed(1)} ms (hand-over to the lane − due)`,
    `p99 ${lateness.p99_ms.toFixed(2)} ms`,
    "< 5 ms",
    paced.result.status === "STREAMED" && lateness.p99_ms < 5,
  );
  // With one request in flight per output, an event handed over while a request is out waits
  // for its answer: lateness at the gate is bounded by hand-over lateness plus one answer time
  // (and the proxy's own hop, ~1 ms).
  const bound = lateness.p99_ms + answer.p99 + 2;
  record(
    `pacing at the gate: lateness p50 ${gate.p50.toFixed(2)} ms, p99 ${gate.p99.toFixed(2)} ms ` +
      `(request reached the gate − due, ${gate.events} events); gate answer time p50 ${
        answer.p50.toFixed(2)
      } ms, p99 ${answer.p99.toFixed(2)} ms (${answer.requests} requests)`,
    `p99 ${gate.p99.toFixed(2)} ms`,
    `<= ${bound.toFixed(1)} ms (bound)`,
    paced.result.status === "STREAMED" && gate.events === paced.result.emitted &&
      gate.p99 <= bound,
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
    `memory streaming ${run.result.emitted} events: worldstream's RSS at 1/5 ${at1m} MB, at end ${at5m} MB, peak ${peak} MB (its PGlite process apart: peak ${run.childPeakMb} MB)`,
    `peak ${peak} MB, end/1st-fifth ${(at5m / at1m).toFixed(2)}`,
    "< 400 MB, within 1.20",
    run.result.status === "STREAMED" && peak < 400 && at5m / at1m <= 1.2,
  );
}

/** The common arguments of an unpaced stream of one output (the s3 one) of the bench world. */
function unpacedArgs(pr: string, igUrl: string, outputId = OUTPUT): string[] {
  return [
    "--engine-run-root",
    w.root,
    "--output-ids",
    outputId,
    "--speedup",
    "0",
    "--ig-url",
    igUrl,
    "--platform-run-id",
    pr,
  ];
}

if (only.has("durability")) {
  // The same unpaced stream with the WAL, checkpoints and receipts on and off
  // (WORLDSTREAM_BENCH_DURABILITY=off, see actors/journal_off.ts), in the order on off off on so
  // a drift over the four runs weighs on both sides alike; best of two. Each run meets a fresh
  // IG with an empty database, so no run pays for the rows of the one before.
  const rates: Record<"on" | "off", number[]> = { on: [], off: [] };
  // worldstream's own CPU seconds per run: what durability costs even when the gate, not
  // worldstream, sets the rate.
  const cpu: Record<"on" | "off", number[]> = { on: [], off: [] };
  let ok = true;
  for (const mode of ["on", "off", "off", "on"] as const) {
    const ig = await startIgProcess();
    const run = await stream(
      unpacedArgs(platformRunId(), ig.url),
      mode === "off" ? { WORLDSTREAM_BENCH_DURABILITY: "off" } : {},
    );
    await ig.stop();
    const rate = run.result.emitted / (run.result.elapsed_ms / 1000);
    ok &&= run.result.status === "STREAMED" && run.result.emitted === events;
    rates[mode].push(rate);
    cpu[mode].push(run.cpu);
    console.log(
      `durability ${mode}: ${run.result.emitted} events, ${Math.round(rate)}/s, worldstream CPU ` +
        `${run.cpu.toFixed(1)} s`,
    );
  }
  const on = Math.max(...rates.on);
  const off = Math.max(...rates.off);
  const each = (r: number[]) => r.map(Math.round).join(", ");
  const cpuOf = (r: number[]) => `${Math.min(...r).toFixed(1)} s`;
  record(
    `durability: WAL + checkpoints + receipts on ${Math.round(on)}/s vs off ${
      Math.round(off)
    }/s (best of 2; on ${each(rates.on)}; off ${each(rates.off)}; worldstream CPU on ${
      cpuOf(cpu.on)
    }, off ${cpuOf(cpu.off)})`,
    `${(on / off).toFixed(2)}x`,
    ">= 0.90x",
    ok && on / off >= 0.9,
  );
}

/** Budgets whose rates are far above any stream's: every event still asks its token buckets. */
const FAR_BUDGETS = [
  { scope: "output", match: "*", events_per_second: 1e9, bytes_per_second: 1e12 },
  { scope: "run", match: "*", events_per_second: 1e9 },
];

/**
 * Writes a copy of profiles/local.yaml to `name` in the bench folder, its `*_ref` paths made
 * absolute, with `policy` and `governance` fields overridden; returns its path.
 */
function localProfileCopy(
  name: string,
  edit: { policy?: Record<string, unknown>; governance?: Record<string, unknown> },
): string {
  const local = new URL("../profiles/local.yaml", import.meta.url).pathname;
  const absolute = (node: unknown): unknown =>
    node === null || typeof node !== "object" || Array.isArray(node) ? node : Object.fromEntries(
      Object.entries(node).map(([k, v]) => [
        k,
        k.endsWith("_ref") && typeof v === "string" ? join(dirname(local), v) : absolute(v),
      ]),
    );
  const doc = absolute(parse(Deno.readTextFileSync(local))) as Record<
    string,
    Record<string, unknown>
  >;
  const path = join(dir, name);
  Deno.writeTextFileSync(
    path,
    stringify({
      ...doc,
      policy: { ...doc.policy, ...edit.policy },
      governance: { ...doc.governance, ...edit.governance },
    }),
  );
  return path;
}

if (only.has("budgets")) {
  // The same unpaced stream under the local profile, and under a copy of it whose budgets set
  // rates far above any stream's (every event still asks its output's and its run's token
  // buckets), in the order on off off on; best of two. Fresh IG each run.
  const budgeted = localProfileCopy("budgets_profile.yaml", {
    governance: { budgets: FAR_BUDGETS },
  });
  const rates: Record<"on" | "off", number[]> = { on: [], off: [] };
  let ok = true;
  for (const mode of ["on", "off", "off", "on"] as const) {
    const ig = await startIgProcess();
    const args = unpacedArgs(platformRunId(), ig.url);
    const run = await stream(mode === "on" ? [...args, "--profile", budgeted] : args);
    await ig.stop();
    const rate = run.result.emitted / (run.result.elapsed_ms / 1000);
    ok &&= run.result.status === "STREAMED" && run.result.emitted === events;
    rates[mode].push(rate);
    console.log(`budgets ${mode}: ${run.result.emitted} events, ${Math.round(rate)}/s`);
  }
  const on = Math.max(...rates.on);
  const off = Math.max(...rates.off);
  const each = (r: number[]) => r.map(Math.round).join(", ");
  record(
    `budgets: rates far above the stream ${Math.round(on)}/s vs no budgets ${
      Math.round(off)
    }/s (best of 2; on ${each(rates.on)}; off ${each(rates.off)})`,
    `${(on / off).toFixed(2)}x`,
    ">= 0.90x",
    ok && on / off >= 0.9,
  );
}

/** A license key set and a pack signed here with a fresh Ed25519 key; the variables naming them. */
async function benchLicense(): Promise<Record<string, string>> {
  const b64 = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const license = {
    schema: "ccp.license.v1",
    kid: "bench-key",
    plan: "bench",
    features: ["telemetry_minimized"],
    exp: Math.floor(Date.now() / 1000) + 86_400,
  };
  const signature = await crypto.subtle.sign(
    { name: "Ed25519" },
    pair.privateKey,
    new TextEncoder().encode(canonicalJson(license)),
  );
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  const pack = join(runDir, "license_pack.json");
  const pubkeys = join(runDir, "license_pubkeys.json");
  Deno.writeTextFileSync(pack, JSON.stringify({ license, signature: b64(signature) }));
  Deno.writeTextFileSync(
    pubkeys,
    JSON.stringify({
      version: "bench",
      keys: [{ id: "bench-key", type: "ed25519", base64: b64(raw) }],
    }),
  );
  return { [LICENSE_ENV.pack]: pack, [LICENSE_ENV.pubkeys]: pubkeys };
}

/** The first admitted envelope of a platform run (the admitted log, read to its first line). */
async function firstAdmitted(url: string, pr: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/v1/ops/admitted?platform_run_id=${pr}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return JSON.parse(text.split("\n")[0]);
}

if (only.has("governance")) {
  // Governance on: the local profile with privacy tier minimized (the shipped minimized fields,
  // a license pack signed here, a pseudonym key) and budgets far above the stream's rate. Off:
  // the local profile as shipped, tier local (a loopback check, no license, nothing
  // pseudonymized) and no budgets. The policy check runs in both: it is the one door of every
  // run. The stream is the bench world's flow anchors (s3_flow_anchor_with_fraud_6B, about a
  // third as many rows as events): the shipped file lists five of their fields, and none of the
  // traffic output's. Order on off off on, best of two, a fresh IG each run.
  const anchor = await Effect.runPromise(
    Effect.gen(function* () {
      const output = yield* resolveOutput(w.world, ANCHOR);
      return yield* buildStreamView({
        engineRunRoot: w.world.engineRunRoot,
        engineRunId: w.world.runReceipt.run_id,
        worldKey: w.world.worldKey,
        outputId: ANCHOR,
        parts: output.parts,
        streamViewRoot: join(w.world.engineRunRoot, "stream_view", "ts_utc"),
        rowShape: w.world.pack.rows.get(ANCHOR)!,
      });
    }).pipe(Effect.provide(DuckDb.layer())),
  );
  const minimized = localProfileCopy("governance_profile.yaml", {
    policy: { privacy_tier: "minimized" },
    governance: { budgets: FAR_BUDGETS },
  });
  const pseudonymKey = `bench pseudonym key ${crypto.randomUUID()}`;
  const onEnv = { ...(await benchLicense()), [PSEUDONYM_KEY_ENV]: pseudonymKey };
  const rates: Record<"on" | "off", number[]> = { on: [], off: [] };
  let ok = true;
  let checked = "";
  for (const mode of ["on", "off", "off", "on"] as const) {
    const ig = await startIgProcess();
    const pr = platformRunId();
    const args = unpacedArgs(pr, ig.url, ANCHOR);
    const run = mode === "on"
      ? await stream([...args, "--profile", minimized], onEnv)
      : await stream(args);
    if (mode === "on" && checked === "") {
      // Once: the gate holds the first row's flow id as the view has it and its party id as
      // the keyed HMAC of the raw one (core/pseudonymize.ts), so the run really pseudonymized.
      const first = (await firstAdmitted(ig.url, pr)).payload as Record<string, number>;
      const raw = await Effect.runPromise(
        Effect.scoped(Effect.gen(function* () {
          const cursor = yield* openViewReader(anchor.view_dir, {
            streamViewId: anchor.stream_view_id,
            outputId: ANCHOR,
          });
          return (yield* cursor.next)![0].row as { flow_id: bigint; party_id: bigint };
        })).pipe(Effect.provide(DuckDb.layer())),
      );
      const hmac = createHmac("sha256", pseudonymKey).update(`party_id|${raw.party_id}`)
        .digest("hex");
      const expected = parseInt(hmac.slice(0, 13), 16) + 1;
      const same = first.flow_id === Number(raw.flow_id) && first.party_id === expected &&
        first.party_id !== Number(raw.party_id);
      ok &&= same;
      checked = same
        ? `party_id ${raw.party_id} → ${first.party_id} at the gate`
        : `NOT pseudonymized: gate ${JSON.stringify(first)}, view ${raw.flow_id}/${raw.party_id}`;
      console.log(`governance check: ${checked}`);
    }
    await ig.stop();
    const rate = run.result.emitted / (run.result.elapsed_ms / 1000);
    ok &&= run.result.status === "STREAMED" && run.result.emitted === anchor.row_count;
    rates[mode].push(rate);
    console.log(
      `governance ${mode}: ${run.result.status}, ${run.result.emitted} events, ` +
        `${Math.round(rate)}/s, worldstream CPU ${run.cpu.toFixed(1)} s`,
    );
  }
  const on = Math.max(...rates.on);
  const off = Math.max(...rates.off);
  const each = (r: number[]) => r.map(Math.round).join(", ");
  record(
    `governance: ${anchor.row_count} flow anchors, minimized (5 fields pseudonymized) + policy + ` +
      `budgets far above the stream ${Math.round(on)}/s vs tier local, policy only, no budgets ${
        Math.round(off)
      }/s (best of 2; on ${each(rates.on)}; off ${each(rates.off)}; ${checked})`,
    `${(on / off).toFixed(2)}x`,
    ">= 0.90x",
    ok && on / off >= 0.9,
  );
}

/** The gate's decision counts for a platform run. */
async function igCounts(url: string, pr: string) {
  const res = await fetch(`${url}/v1/ops/stats?platform_run_id=${pr}`);
  if (!res.ok) throw new Error(`IG stats answered ${res.status}`);
  const all = await res.json() as Record<string, { admitted: number; duplicate: number }>;
  return all[pr] ?? { admitted: 0, duplicate: 0 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds from spawning `main.ts` with no command (usage, exit 2) to its exit; best of 3. */
async function bareStartMs(): Promise<number> {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", V8_FLAGS, MAIN],
      stdout: "null",
      stderr: "null",
    }).output();
    times.push(performance.now() - t0);
  }
  return Math.min(...times);
}

/**
 * Streams unpaced, SIGKILLs worldstream once the gate has admitted `fraction` of the view, then
 * starts the same command again (same platform run, runs root with the WAL, database) and times,
 * from that spawn, the gate's first answer to the new process and its first new admission.
 */
async function crashAndRestart(igUrl: string, fraction: number, state: "pglite" | "server") {
  const pr = platformRunId();
  const db = state === "server" ? await freshDatabase("ws") : undefined;
  const env = siteEnv(
    db
      ? { WORLDSTREAM_DB_BACKEND: "server", DATABASE_URL: db.url }
      : { WORLDSTREAM_DB_BACKEND: "pglite" },
  );
  const args = unpacedArgs(pr, igUrl);
  const killAt = Math.floor(events * fraction);
  const first = spawnStream(args, env);
  let exited = false;
  first.done.then(() => exited = true);
  const deadline = Date.now() + 600_000;
  while ((await igCounts(igUrl, pr)).admitted < killAt) {
    if (exited || Date.now() > deadline) {
      const { out, err } = await first.done;
      throw new Error(`The stream to crash ended first: ${out}\n${err.slice(-2000)}`);
    }
    await sleep(50);
  }
  first.child.kill("SIGKILL");
  await first.done;
  // Requests the dead process left in flight may still land: wait until the counts hold still.
  let before = await igCounts(igUrl, pr);
  for (let still = 0; still < 5;) {
    await sleep(100);
    const now = await igCounts(igUrl, pr);
    still = now.admitted === before.admitted && now.duplicate === before.duplicate ? still + 1 : 0;
    before = now;
  }

  const spawnedAt = Date.now();
  const t0 = performance.now();
  const second = spawnStream(args, env);
  let ended = false;
  second.done.then(() => ended = true);
  let answered: number | undefined;
  let admitted: number | undefined;
  while (admitted === undefined && !ended && performance.now() - t0 < 60_000) {
    const now = await igCounts(igUrl, pr);
    const t = performance.now() - t0;
    if (
      answered === undefined && now.admitted + now.duplicate > before.admitted + before.duplicate
    ) {
      answered = t;
    }
    if (now.admitted > before.admitted) admitted = t;
    else await sleep(20);
  }
  // Stopped gracefully: its result line says where it resumed.
  if (!ended) second.child.kill("SIGTERM");
  const { out, err } = await second.done;
  if (admitted === undefined) {
    console.log(`restart never admitted anything new: ${out}\n${err.slice(-3000)}`);
  }
  const result = JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
  const keep = Deno.env.get("BENCH_RESTART_LOGS");
  if (keep) await Deno.writeTextFile(`${keep}/restart-${state}-${fraction}.log`, err);
  await db?.drop();
  const logs = logLines(err);
  const at = (message: string) => {
    const line = logs.find((l) =>
      l.message === message || (l.message as unknown[])?.[0] === message
    );
    return line ? Date.parse(String(line.timestamp)) - spawnedAt : NaN;
  };
  return {
    crashedAt: before.admitted,
    resumedFrom: result.outputs?.[0]?.resumed_from_seq as number | null | undefined,
    answered: answered ?? NaN,
    admitted: admitted ?? NaN,
    healthy: at("healthy"),
    streamStart: at("stream_start"),
  };
}

if (only.has("restart")) {
  const bare = await bareStartMs();
  console.log(`deno start-up, main.ts with no command (usage, exit): ${Math.round(bare)} ms`);
  // worldstream's own state (checkpoints, receipts) in embedded PGlite, as the local profile
  // keeps it, and on a Postgres server, as dev/prod do (when the cluster started).
  const states = igPg ? ["pglite", "server"] as const : ["pglite"] as const;
  for (const state of states) {
    for (const [label, fraction] of [["early", 0.1], ["late", 0.85]] as const) {
      const ig = await startIgProcess();
      const r = await crashAndRestart(ig.url, fraction, state);
      await ig.stop();
      const ms = (n: number) => `${Math.round(n)} ms`;
      console.log(
        `restart ${state} ${label}: SIGKILL at ${r.crashedAt} admitted, resumed after seq ` +
          `${r.resumedFrom}; from spawn: healthy ${ms(r.healthy)}, stream_start ` +
          `${ms(r.streamStart)}, first answer ${ms(r.answered)}, first new admission ` +
          ms(r.admitted),
      );
      record(
        `restart, state in ${state}, SIGKILL ${label} (${r.crashedAt} of ${events} admitted): ` +
          `first new admission ${ms(r.admitted)} after spawn (deno start-up ${ms(bare)}, ` +
          `stream_start at ${ms(r.streamStart)}, first IG answer at ${ms(r.answered)})`,
        `${(r.admitted / 1000).toFixed(2)} s`,
        "< 2 s",
        typeof r.resumedFrom === "number" && r.admitted < 2000,
      );
    }
  }
}

/** The admin routes a monitoring client polls, with the viewer token below. */
const ADMIN_ROUTES = ["/v1/status", "/metrics", "/readyz"];

/** The bench's own viewer token for the admin API (the run gets it from its environment). */
const BENCH_VIEWER_TOKEN = `bench-viewer-${crypto.randomUUID()}`;

/**
 * Polls every {@link ADMIN_ROUTES} route of `baseUrl` 10 times a second (the three in turn, then a
 * 97 ms pause) until `stop` resolves; answers the ticks (three answers) and the answers other than
 * 200. The client is wrk with a Lua script, one thread and one connection: a lean native client,
 * so that its own CPU on the 2 cores the stream shares is small and the figure is what serving the
 * polls costs worldstream (a JavaScript poller here cost 1.3–2.0 s of CPU per run).
 */
async function pollAdmin(baseUrl: string, stop: Promise<unknown>) {
  let stopped = false;
  void stop.finally(() => (stopped = true));
  // Start once the runtime answers through the API (before, the port refuses or its routes answer
  // 503); at the end, while the runtime stops, they answer 503 again: those are reported, not
  // counted as polls.
  while (!stopped) {
    const up = await fetch(`${baseUrl}/v1/status`, {
      headers: { authorization: `Bearer ${BENCH_VIEWER_TOKEN}` },
    }).then((r) => r.body?.cancel().then(() => r.ok)).catch(() => false);
    if (up) break;
    await sleep(50);
  }
  if (stopped) return { ticks: 0, failed: 0 };
  const script = join(dir, "admin_poll.lua");
  Deno.writeTextFileSync(
    script,
    `local paths = { ${ADMIN_ROUTES.map((r) => `"${r}"`).join(", ")} }
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n - 1) % #paths + 1], { ["authorization"] = "Bearer ${BENCH_VIEWER_TOKEN}" })
end
delay = function()
  if n % #paths == 0 then return 97 end
  return 0
end
response = function(status, headers, body)
  if status ~= 200 then io.stderr:write(paths[(n - 1) % #paths + 1] .. " " .. status .. "\\n") end
end
`,
  );
  const child = new Deno.Command("wrk", {
    args: ["-t1", "-c1", "-d3600s", "-s", script, baseUrl],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await stop;
  child.kill("SIGINT");
  const done = await child.output();
  const out = new TextDecoder().decode(done.stdout);
  const refused = new Map<string, number>();
  for (const line of new TextDecoder().decode(done.stderr).split("\n").filter(Boolean)) {
    refused.set(line, (refused.get(line) ?? 0) + 1);
  }
  if (refused.size > 0) console.log(`admin polls not 200: ${JSON.stringify([...refused])}`);
  const requests = Number(out.match(/(\d+) requests in/)?.[1] ?? 0);
  const failed = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  return { ticks: Math.floor((requests - failed) / ADMIN_ROUTES.length), failed };
}

if (only.has("admin")) {
  // `run --once` on the bench world (its traffic and context outputs, unpaced), in the order
  // off on on off so a drift weighs on both sides alike; best of two. Each run meets a fresh IG.
  const rates: Record<"off" | "on", number[]> = { off: [], on: [] };
  let ok = true;
  let polled = "";
  for (const mode of ["off", "on", "on", "off"] as const) {
    const ig = await startIgProcess();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const t0 = performance.now();
    // CPU of worldstream (the only child that exits during the run) and of this process (the
    // poller): where a poll's cost lands on the 2 cores the stream shares.
    const cpu0 = childCpuSeconds();
    const own0 = process.cpuUsage();
    const spawned = spawnStream(
      [
        "--once",
        "--engine-run-root",
        w.root,
        "--speedup",
        "0",
        "--ig-url",
        ig.url,
        "--admin-port",
        String(port),
      ],
      siteEnv({
        WORLDSTREAM_ADMIN_TOKEN: `bench-operator-${crypto.randomUUID()}`,
        WORLDSTREAM_VIEWER_TOKEN: BENCH_VIEWER_TOKEN,
      }),
      "run",
    );
    const poller = mode === "on"
      ? pollAdmin(`http://127.0.0.1:${port}`, spawned.done)
      : Promise.resolve(undefined);
    const { out, err, status } = await spawned.done;
    const wall = (performance.now() - t0) / 1000;
    // worldstream has exited and wrk not yet: the children's CPU so far is worldstream's alone;
    // what it grows by when wrk exits is the poller's.
    const cpu = childCpuSeconds() - cpu0;
    const own = process.cpuUsage(own0);
    const poll = await poller;
    const pollerCpu = childCpuSeconds() - cpu0 - cpu;
    await ig.stop();
    const result = JSON.parse(out.trim().split("\n").pop() ?? "{}");
    if (!status.success) console.log(err.split("\n").slice(-5).join("\n"));
    const rate = result.emitted / (result.elapsed_ms / 1000);
    ok &&= status.success && result.status === "STREAMED";
    rates[mode].push(rate);
    // Polls answered, about 10 a second (not a client gone wild without its pause).
    ok &&= poll === undefined || (poll.ticks > 0 && poll.ticks / wall <= 11);
    const polls = poll
      ? `, ${poll.ticks} polls (${(poll.ticks / wall).toFixed(1)}/s, ${poll.failed} not 200)`
      : "";
    if (poll) polled = `${poll.ticks} polls of ${ADMIN_ROUTES.join(" + ")} in ${wall.toFixed(0)} s`;
    console.log(
      `admin ${mode}: ${result.emitted} events, ${Math.round(rate)}/s${polls}; CPU worldstream ${
        cpu.toFixed(1)
      } s (${(cpu / result.emitted * 1e6).toFixed(0)} µs/event), bench process ${
        ((own.user + own.system) / 1e6).toFixed(1)
      } s${poll ? `, wrk ${pollerCpu.toFixed(1)} s` : ""}, wall ${wall.toFixed(0)} s`,
    );
  }
  const on = Math.max(...rates.on);
  const off = Math.max(...rates.off);
  const each = (r: number[]) => r.map(Math.round).join(", ");
  record(
    `admin API polled 10/s (${ADMIN_ROUTES.join(", ")}): run --once unpaced ${
      Math.round(on)
    }/s vs ${Math.round(off)}/s unpolled (best of 2; polled ${each(rates.on)}; unpolled ${
      each(rates.off)
    }; last: ${polled})`,
    `${(on / off).toFixed(2)}x`,
    ">= 0.95x",
    ok && on / off >= 0.95,
  );
}

if (only.has("replay")) {
  // A window deep in a big view (the memory bench's world, 5M events by default): the replay must
  // seek to it, not read the view from its start. Each replay is a `POST /v1/replay` of 1,000
  // events into a fresh platform run on a running runtime, timed from the request to the gate's
  // first admission (the world's checks, the window's seek, the plan and the first batch), at 90%
  // of the view and, for comparison, at its start; best of two each.
  const n = memoryEvents > 0 ? memoryEvents : 5_000_000;
  const big = await prepareWorld(n);
  const files = [...Deno.readDirSync(big.vdir)]
    .filter((e) => e.name.endsWith(".parquet"))
    .map((e) => join(big.vdir, e.name))
    .sort();
  const rows = await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const s = yield* (yield* DuckDb).session;
      const r = yield* s.rows<{ n: bigint | number }>(duckSql("bench_view_rows"), { files });
      return Number(r[0].n);
    })).pipe(Effect.provide(DuckDb.layer())),
  );
  const ig = await startIgProcess();
  // The runtime, serving the admin API (local profile: it also streams its demo world, paced,
  // into the same gate under another platform run, so replays run beside a live run).
  const port = 20000 + Math.floor(Math.random() * 20000);
  const operator = `bench-operator-${crypto.randomUUID()}`;
  const runtime = spawnStream(
    ["--admin-port", String(port), "--ig-url", ig.url],
    siteEnv({ WORLDSTREAM_ADMIN_TOKEN: operator }),
    "run",
  );
  const base = `http://127.0.0.1:${port}`;
  const headers = { authorization: `Bearer ${operator}`, "content-type": "application/json" };
  for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
    const ok = await fetch(`${base}/v1/status`, { headers }).then(
      async (r) => (await r.text(), r.ok),
      () => false,
    );
    if (ok) break;
    await sleep(100);
  }
  /** POST /v1/replay of 1,000 events from `from`; ms from the request to the first admission. */
  const replayOnce = async (from: number) => {
    const pr = platformRunId();
    const t0 = performance.now();
    const res = await fetch(`${base}/v1/replay`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        engine_run_root: big.root,
        output_id: OUTPUT,
        from_seq: from,
        to_seq: from + 1000,
        speedup: 0,
        platform_run_id: pr,
      }),
    });
    const answer = await res.json();
    const answeredMs = performance.now() - t0;
    let admitted: number | undefined;
    while (admitted === undefined && performance.now() - t0 < 60_000) {
      if ((await igCounts(ig.url, pr)).admitted > 0) admitted = performance.now() - t0;
      else await sleep(5);
    }
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      if ((await igCounts(ig.url, pr)).admitted >= 1000) break;
      await sleep(50);
    }
    const total = (await igCounts(ig.url, pr)).admitted;
    if (res.status !== 202 || total !== 1000) console.log(res.status, JSON.stringify(answer));
    return { admitted: admitted ?? NaN, answeredMs, ok: res.status === 202 && total === 1000 };
  };
  const deep = Math.floor(rows * 0.9);
  const runs: Record<"start" | "deep", Array<Awaited<ReturnType<typeof replayOnce>>>> = {
    start: [],
    deep: [],
  };
  for (const where of ["start", "deep", "deep", "start"] as const) {
    const r = await replayOnce(where === "start" ? 0 : deep);
    runs[where].push(r);
    console.log(
      `replay ${where} (seq ${where === "start" ? 0 : deep} of ${rows}): answered ${
        Math.round(r.answeredMs)
      } ms, first admission ${Math.round(r.admitted)} ms after POST /v1/replay`,
    );
  }
  runtime.child.kill("SIGTERM");
  await runtime.done;
  await ig.stop();
  const best = (xs: Array<{ admitted: number }>) => Math.min(...xs.map((x) => x.admitted));
  record(
    `replay through POST /v1/replay of 1,000 events at seq ${deep} of a ${rows}-row view: first ` +
      `admission ${Math.round(best(runs.deep))} ms after the request (best of 2) vs ${
        Math.round(best(runs.start))
      } ms at the view's start (runs: deep ${
        runs.deep.map((r) => Math.round(r.admitted)).join(", ")
      }, start ${runs.start.map((r) => Math.round(r.admitted)).join(", ")})`,
    `${Math.round(best(runs.deep))} ms`,
    "< 1000 ms",
    [...runs.start, ...runs.deep].every((r) => r.ok) && best(runs.deep) < 1000,
  );
}

await cleanUp();
console.log("\nworldstream stream bench");
for (const r of results) {
  console.log(
    `${r.ok ? "PASS" : "MISS"}  ${r.value.padEnd(28)} goal ${r.goal.padEnd(22)} ${r.target}`,
  );
}
Deno.exit(results.every((r) => r.ok) ? 0 : 1);

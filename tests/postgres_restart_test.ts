import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { Effect } from "effect";
import type { ReadyzBody } from "../api/routes/health.ts";
import { Postgres } from "../stores/postgres.ts";
import { Wal } from "../actors/wal/writer.ts";
import { startIg } from "../ig/server.ts";
import {
  assertTimeOrdered,
  copyDb,
  effectTest,
  expectedIds,
  freePort,
  gateAdmitted,
  gateCounts,
  logLines,
  ofOutput,
  OUTPUTS,
  processEnv,
  processSite,
  runCommand,
  SCENARIO_RUN,
  scopedTempDir,
  shippedProfile,
  spawnWorldstream,
  streamArgs,
  tail,
  waitFor,
} from "./_testing.ts";
import { havePostgresTools, privateCluster } from "./pg_cluster.ts";

// Postgres going away under the real command (`main.ts run` / `stream`), on a private cluster
// each test starts and stops (scripts/pg_cluster.sh): a restart mid-run is ridden out through the
// WAL, and DATABASE_URL unreachable at start is edge's degraded start or backend's timeout. The
// gate runs in this process, on PGlite, so it stays up whatever happens to Postgres.

const { tmp: TMP, world: WORLD, template: TEMPLATE, rows: ROWS, total: TOTAL } = await processSite(
  "postgres_restart_test_",
  4000,
);
const EXPECTED = await Effect.runPromise(expectedIds(WORLD, OUTPUTS));
const ignore = !havePostgresTools();

/** What worldstream's Postgres holds of a finished run. */
function stored(url: string) {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const checkpoints = yield* pg.query<{ output_id: string; last_seq: number }>(
      "select output_id, last_seq from ws_checkpoints order by output_id",
    );
    const receipts = yield* pg.query<{ kind: string; n: number }>(
      "select kind, count(*)::int as n from ws_receipts group by kind order by kind",
    );
    const ledger = yield* pg.query<{ message_id: string; status: string }>(
      "select message_id, status from ws_ready_ledger order by recorded_at",
    );
    return {
      checkpoints: new Map(checkpoints.map((r) => [r.output_id, Number(r.last_seq)])),
      receipts: new Map(receipts.map((r) => [r.kind, r.n])),
      ledger,
    };
  }).pipe(Effect.provide(Postgres.layerServer(url, { max: 1 })));
}

/** The WAL records a runs root still holds undrained. */
function undrained(runsRoot: string) {
  return Wal.pipe(
    Effect.flatMap((wal) => wal.pending),
    Effect.map((records) => records.length),
    Effect.provide(Wal.layer({ dir: join(runsRoot, "wal") })),
  );
}

/** Fails unless every output's events reached the gate once each, in order. */
function assertExactlyOnce(admitted: ReadonlyArray<Record<string, unknown>>) {
  for (const id of OUTPUTS) {
    const envelopes = ofOutput(admitted as never, id);
    assert.deepEqual(envelopes.map((e) => e.event_id), EXPECTED.get(id), `${id}: exactly once`);
    assertTimeOrdered(envelopes, id);
  }
}

effectTest(
  "a Postgres restart under run is ridden out: /readyz goes degraded then ready, the run ends STREAMED, every event reaches the gate once, and the WAL drains checkpoints, receipts and the READY ledger into Postgres",
  Effect.gen(function* () {
    const started = performance.now();
    const dir = yield* scopedTempDir(TMP, "restart");
    const cluster = yield* privateCluster(join(dir, "pgdata"));
    const runsRoot = join(dir, "runs");
    const vars = {
      WORLDSTREAM_RUNS_ROOT: runsRoot,
      WORLDSTREAM_DB_BACKEND: "server",
      DATABASE_URL: cluster.url,
      CONTROL_BUS_ROOT: join(dir, "bus"),
      WSP_TRAFFIC_OUTPUT_IDS: OUTPUTS[0],
      WSP_CONTEXT_OUTPUT_IDS: OUTPUTS[1],
    };
    const ig = yield* gate(dir);
    const port = freePort();
    const readyz = (status: ReadyzBody["status"]) =>
      Effect.promise(async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          const body = await res.json() as ReadyzBody;
          return body.status === status ? body : undefined;
        } catch {
          return undefined;
        }
      });

    const life = yield* Effect.scoped(Effect.gen(function* () {
      // Paced so the world takes ~20 s: Postgres goes down early and is back well before the end.
      const ws = yield* spawnWorldstream([
        "run",
        "--engine-run-root",
        WORLD,
        "--speedup",
        "20000",
        "--ig-url",
        ig.url,
        "--admin-port",
        String(port),
      ], { env: processEnv(vars), cwd: dir });
      yield* waitFor("ready before the restart", readyz("ready"), {
        timeoutMs: 60_000,
        process: ws,
      });
      yield* waitFor(
        "some events admitted",
        gateTotal(ig).pipe(Effect.map((n) => n >= 200 ? n : undefined)),
        { timeoutMs: 60_000, process: ws },
      );
      yield* cluster.stop;
      const atStop = yield* gateTotal(ig);
      const degraded = yield* waitFor("readyz degraded", readyz("degraded"), {
        timeoutMs: 30_000,
        process: ws,
      });
      const grown = yield* waitFor(
        "the gate keeps admitting while Postgres is down",
        gateTotal(ig).pipe(Effect.map((n) => n >= atStop + 400 ? n : undefined)),
        { timeoutMs: 30_000, process: ws },
      );
      yield* cluster.start;
      const ready = yield* waitFor(
        "readyz ready again with the WAL drained",
        readyz("ready").pipe(
          Effect.map((b) => b !== undefined && b.wal?.pending_records === 0 ? b : undefined),
        ),
        { timeoutMs: 60_000, process: ws },
      );
      yield* waitFor(
        "every event admitted",
        gateTotal(ig).pipe(Effect.map((n) => n >= TOTAL ? n : undefined)),
        { timeoutMs: 120_000, process: ws },
      );
      const exited = yield* ws.kill("SIGTERM");
      return { degraded, ready, exited, whileDown: grown - atStop };
    }));

    const { degraded, exited } = life;
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const lines = exited.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const result = lines.find((l) => l.ready_status !== undefined && l.stopped_by === undefined);
    assert.equal(result?.status, "STREAMED", exited.stdout);
    assert.equal(result?.emitted, TOTAL);
    const pg = degraded.dependencies.find((d) => d.name === "postgres");
    assert.equal(pg?.ok, false, JSON.stringify(degraded));
    assert.ok((degraded.wal?.pending_records ?? 0) > 0, "the WAL held what Postgres could not");
    assert.ok(logLines(exited.stderr, "WAL drain failed").length > 0, "the drain saw it down");

    const run = String(result.platform_run_id);
    const counts = yield* gateCounts(ig, run);
    assert.equal(counts.admitted, TOTAL);
    assert.equal(counts.duplicate, 0, "a Postgres restart re-sends nothing");
    assertExactlyOnce(yield* gateAdmitted(ig, run));

    const db = yield* stored(cluster.url);
    for (const id of OUTPUTS) assert.equal(db.checkpoints.get(id), ROWS[id] - 1, id);
    assert.ok((db.receipts.get("delivery") ?? 0) > 0, "delivery receipts stored");
    assert.equal(db.receipts.get("run_end"), 1, "the run_end receipt stored");
    assert.deepEqual(
      db.ledger.filter((r) => r.message_id === result.message_id).map((r) => r.status).at(-1),
      "STREAMED",
    );
    assert.equal(yield* undrained(runsRoot), 0, "nothing left in the WAL");
    console.log(
      `postgres restart under run: ${TOTAL} events, ${life.whileDown} admitted while it was down, ` +
        `${logLines(exited.stderr, "WAL drain failed").length} failed drains; ` +
        `${Math.round(performance.now() - started)} ms`,
    );
  }),
  { ignore },
);

effectTest(
  "DATABASE_URL unreachable at start: edge mode streams at once from the runs root's own head, degraded; backend mode waits its timeout and fails BOOTSTRAP_TIMEOUT naming postgres, sending nothing",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "unreachable");
    const cluster = yield* privateCluster(join(dir, "pgdata"));
    const ig = yield* gate(dir);
    const runsRoot = join(dir, "runs");
    const vars = {
      WORLDSTREAM_RUNS_ROOT: runsRoot,
      WORLDSTREAM_DB_BACKEND: "server",
      DATABASE_URL: cluster.url,
      CONTROL_BUS_ROOT: join(dir, "bus"),
    };
    const site = { dir, vars };
    const run = "platform_20260101T000021Z";
    const stream = (extra: ReadonlyArray<string>, platformRunId = run) =>
      streamArgs(WORLD, ig.url, { platformRunId, scenarioRunId: SCENARIO_RUN, extra });

    // The runs root meets its Postgres once (a bounded first run), so it knows its chain head.
    const first = yield* runCommand(stream(["--max-events-per-output", "100"]), site);
    assert.equal(first.code, 0, `${first.stdout}\n${tail(first.stderr)}`);
    yield* cluster.stop;

    // edge (the default): Postgres refuses connections at start; the rest of the world streams.
    const edge = yield* runCommand(stream([]), site);
    assert.equal(edge.code, 0, `${edge.stdout}\n${tail(edge.stderr)}`);
    assert.equal(edge.result?.status, "STREAMED", edge.stdout);
    assert.ok(logLines(edge.stderr, "degraded").length > 0, "it said it started degraded");
    assert.ok(
      logLines(edge.stderr, "degraded: Postgres unreachable").length > 0,
      tail(edge.stderr),
    );
    assert.ok((yield* undrained(runsRoot)) > 0, "the WAL keeps what Postgres could not take");
    assertExactlyOnce(yield* gateAdmitted(ig, run));

    // backend: a profile that waits 2 s for its dependencies.
    const profile = shippedProfile("local");
    profile.wiring.bootstrap = { mode: "backend", poll_interval_seconds: 0.25, timeout_seconds: 2 };
    const path = join(dir, "backend.yaml");
    Deno.writeTextFileSync(path, stringify(profile));
    const other = "platform_20260101T000022Z";
    const startedAt = performance.now();
    const backend = yield* runCommand(stream(["--profile", path], other), site);
    assert.equal(backend.code, 1, `${backend.stdout}\n${tail(backend.stderr)}`);
    assert.equal(backend.result?.reason, "BOOTSTRAP_TIMEOUT", backend.stdout);
    assert.match(String(backend.result?.message), /: postgres\b/);
    assert.ok(performance.now() - startedAt >= 2000, "not before its timeout");
    assert.equal((yield* gateCounts(ig, other)).admitted, 0, "nothing sent");
  }),
  { ignore },
);

// ---------------------------------------------------------------------------------------------

/** The reference gate on a PGlite copy in `dir`, for the test's scope. */
function gate(dir: string) {
  return startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
}

/** Events the gate admitted over every platform run. */
function gateTotal(ig: { readonly url: string }) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`);
    const all = await res.json() as Record<string, { admitted: number }>;
    return Object.values(all).reduce((n, c) => n + c.admitted, 0);
  });
}

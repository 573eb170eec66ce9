import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { bootstrap } from "../actors/bootstrap.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { loadCheckpoint } from "../stores/checkpoints.ts";
import type { StreamResult } from "../schemas/messages.ts";
import { runControl } from "./run_control.ts";
import { runList } from "./run_list.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// Run control on the real runtime (DuckDB, PGlite, WAL, Supervisor) into the reference gate
// over loopback: a paused run sends nothing and its schedule moves by the pause (no burst of
// what fell due meanwhile: the pacing lateness stays small); a cancelled run ends CANCELLED with
// its run_end receipt, the events it sent checkpointed; each bad request has its reason code.

const TMP = await Deno.makeTempDir({ prefix: "run_control_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
const WORLD = join(TMP, "world");
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const ROWS = (await Effect.runPromise(
  genWorld({ out: WORLD, events: 400 }).pipe(Effect.provide(DuckDb.layer())),
)).outputs[TRAFFIC];

let sites = 0;
/** A runtime of its own (runs root, PGlite, gate) streaming the traffic output paced. */
function withRuntime<A, E>(
  body: (platformRunId: string) => Effect.Effect<A, E, Supervisor | WalDrain | Postgres>,
) {
  return Effect.scoped(Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    cpSync(BARE_DB, join(dir, "pg"), { recursive: true });
    cpSync(BARE_DB, join(dir, "ig"), { recursive: true });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
    });
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      // Small batches: what is in flight when a pause comes is a few events, not hundreds.
      wiring: {
        ...loaded.wiring,
        wsp_courier: { mode: "auto", ...loaded.wiring.wsp_courier, batch_size: 5 },
      },
    };
    const ig = yield* startIg({ db: join(dir, "ig") });
    // The world's five days in about 8 s.
    const config = runConfigOf(profile, { igUrl: ig.url, speedup: 5 * 86_400 / 8 });
    return yield* bootstrap(profile, config.courier.endpoint, config.bootstrap).pipe(
      Effect.andThen(body(`platform_20260501T0000${String(sites).padStart(2, "0")}Z`)),
      Effect.provide(coreLayer(config)),
    );
  }));
}

function launch(platformRunId: string) {
  return Effect.flatMap(Supervisor, (s) =>
    s.launch({
      _tag: "RunRequested",
      source: "operator",
      engine_run_root: WORLD,
      platform_run_id: platformRunId,
    }));
}

/** Polls the run's emitted count until it reaches `n` (deadline 60 s). */
function emittedAtLeast(runId: string, n: number) {
  return Effect.gen(function* () {
    const deadline = performance.now() + 60_000;
    while (true) {
      const [run] = (yield* runList({ run_id: runId })).runs;
      const emitted = run.progress.reduce((k, o) => k + o.emitted, 0);
      if (emitted >= n) return emitted;
      assert.ok(run.state !== "finished", `run ${runId} finished before emitting ${n}`);
      assert.ok(performance.now() < deadline, `run ${runId} did not emit ${n} in 60 s`);
      yield* Effect.sleep(20);
    }
  });
}

function emitted(runId: string) {
  return runList({ run_id: runId }).pipe(
    Effect.map(({ runs: [run] }) => run.progress.reduce((k, o) => k + o.emitted, 0)),
  );
}

/** The emitted count once it has not moved for 500 ms (deadline 60 s). */
function settled(runId: string) {
  return Effect.gen(function* () {
    const deadline = performance.now() + 60_000;
    let last = yield* emitted(runId);
    while (true) {
      yield* Effect.sleep(500);
      const now = yield* emitted(runId);
      if (now === last) return now;
      assert.ok(performance.now() < deadline, `run ${runId} kept sending while paused`);
      last = now;
    }
  });
}

function reasonOf<A>(effect: Effect.Effect<A, { reason: string }, Supervisor>) {
  return effect.pipe(
    Effect.map(() => "none"),
    Effect.catch((e) => Effect.succeed(e.reason)),
  );
}

Deno.test("a paused run sends nothing, and on resume its schedule goes on without a burst", () =>
  Effect.runPromise(withRuntime((platformRunId) =>
    Effect.gen(function* () {
      const supervisor = yield* Supervisor;
      const run = yield* launch(platformRunId);
      assert.equal(run.kind, "run");
      yield* emittedAtLeast(run.run_id, 40);
      const paused = yield* runControl({ run_id: run.run_id, action: "pause" });
      assert.equal(paused.state, "paused");
      assert.equal(
        yield* reasonOf(runControl({ run_id: run.run_id, action: "pause" })),
        "RUN_NOT_RUNNING",
      );
      // A request already out is answered; after that nothing moves while paused.
      const pausedAt = performance.now();
      const held = yield* settled(run.run_id);
      yield* Effect.sleep(2_000);
      const [after] = (yield* runList({ run_id: run.run_id })).runs;
      assert.equal(
        yield* emitted(run.run_id),
        held,
        `nothing was sent while paused (of ${ROWS}): ${JSON.stringify(after)}`,
      );
      assert.ok(held < ROWS, "the pause came before the end");
      const resumed = yield* runControl({ run_id: run.run_id, action: "resume" });
      const pausedMs = performance.now() - pausedAt;
      assert.equal(resumed.state, "running");
      assert.equal(
        yield* reasonOf(runControl({ run_id: run.run_id, action: "resume" })),
        "RUN_NOT_PAUSED",
      );
      const result: StreamResult = yield* supervisor.result(run.run_id);
      assert.equal(result.status, "STREAMED");
      assert.equal(result.emitted, ROWS);
      // Events that fell due during the pause went out on the moved schedule, not that late.
      const lateness = result.outputs?.[0].lateness;
      assert.ok(lateness !== undefined);
      assert.ok(
        lateness.max_ms < pausedMs / 2,
        `max pacing lateness ${lateness.max_ms} ms after a pause of ${pausedMs} ms`,
      );
      assert.equal(
        yield* reasonOf(runControl({ run_id: run.run_id, action: "pause" })),
        "RUN_FINISHED",
      );
      assert.equal(
        yield* reasonOf(runControl({ run_id: "run-nope", action: "cancel" })),
        "RUN_UNKNOWN",
      );
    })
  )));

Deno.test("a cancelled run ends CANCELLED with its run_end receipt and a checkpoint after what it sent", () =>
  Effect.runPromise(withRuntime((platformRunId) =>
    Effect.gen(function* () {
      const supervisor = yield* Supervisor;
      const run = yield* launch(platformRunId);
      yield* emittedAtLeast(run.run_id, 30);
      const cancelling = yield* runControl({ run_id: run.run_id, action: "cancel" });
      assert.ok(["cancelling", "finished"].includes(cancelling.state), cancelling.state);
      const result = yield* supervisor.result(run.run_id);
      assert.equal(result.status, "CANCELLED");
      assert.equal(result.reason, "RUN_CANCELLED");
      assert.ok(result.emitted > 0 && result.emitted < ROWS, `emitted ${result.emitted}`);
      const [listed] = (yield* runList({ run_id: run.run_id })).runs;
      assert.equal(listed.state, "finished");
      assert.equal(listed.status, "CANCELLED");
      yield* (yield* WalDrain).drainNow;
      const ends = yield* (yield* Postgres).query<{ body: { detail: Record<string, unknown> } }>(
        "select body from ws_receipts where kind = 'run_end' order by seq",
      );
      assert.equal(ends.at(-1)?.body.detail.status, "CANCELLED");
      const checkpoint = yield* loadCheckpoint(listed.run_key!, TRAFFIC);
      assert.equal(checkpoint?.seq, result.emitted - 1, "the checkpoint is after what was sent");
    })
  )));

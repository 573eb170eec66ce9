import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer, type Scope } from "effect";
import { packKey } from "../actors/supervisor.ts";
import { postgresLayer } from "../actors/runtime.ts";
import { auditVerifyCommand } from "../cli/audit_verify.ts";
import { loadProfile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Wal } from "../stores/wal.ts";
import { effectiveCheckpoint } from "../stores/wal_drain.ts";
import {
  assertTimeOrdered,
  copyDb,
  expectedIds,
  fileTempDir,
  gateAdmitted,
  gateCounts,
  makeWorld,
  ofOutput,
  OUTPUTS,
  pgliteTemplate,
  processEnv,
  SCENARIO_RUN,
  scopedTempDir,
  seededRandom,
  spawnWorldstream,
  tail,
  waitFor,
  worldAt,
} from "./_testing.ts";

// Crash safety against real processes: worldstream runs as `main.ts stream` and is SIGKILLed
// mid-stream again and again; the reference gate runs in this process, so what it admitted
// outlives every crash. Between crashes, while worldstream is dead, this process opens its WAL
// and PGlite folder and reads the checkpoint the next start will resume from.

const TMP = await fileTempDir("crash_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 4000),
]);
const TOTAL = OUTPUTS.reduce((n, id) => n + ROWS[id], 0);

const RUN = "platform_20260101T000000Z";
const CYCLES = 10;
// The world spans five days: at 20 000× it would take ~22 s, so each killed run moves it a little.
const PACED_SPEEDUP = 20_000;
// Fixed, so the kill points (how many new admissions each run gets before its SIGKILL) repeat.
const KILL_SEED = 20260101;
const MAX_NEW_BEFORE_KILL = 120;

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

test(
  `${CYCLES} SIGKILLs mid-stream lose nothing: every event admitted once, in order, and checkpoints only move forward behind the gate`,
  Effect.gen(function* () {
    const started = performance.now();
    const dir = yield* scopedTempDir(TMP, "site");
    const vars = {
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_PGLITE_DIR: copyDb(TEMPLATE, join(dir, "pg")),
      WORLDSTREAM_DB_BACKEND: "pglite",
      CONTROL_BUS_ROOT: join(dir, "bus"),
    };
    const env = processEnv(vars);
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const profile = yield* loadProfile("local", vars);
    const scope = packKey(yield* worldAt(WORLD), RUN, SCENARIO_RUN);
    const expected = yield* expectedIds(WORLD, OUTPUTS);
    for (const id of OUTPUTS) assert.equal(expected.get(id)!.length, ROWS[id], id);

    const stream = (speedup: number) =>
      spawnWorldstream([
        "stream",
        "--engine-run-root",
        WORLD,
        "--output-ids",
        OUTPUTS.join(","),
        "--speedup",
        String(speedup),
        "--platform-run-id",
        RUN,
        "--scenario-run-id",
        SCENARIO_RUN,
        "--ig-url",
        ig.url,
      ], { env, cwd: dir });

    // Where the next start resumes, read the way the runtime reads it: the later of Postgres and
    // the undrained WAL. Opening the WAL also proves the dead process left no lock behind.
    const resumePoints = Effect.gen(function* () {
      const points = new Map<string, number>();
      for (const id of OUTPUTS) points.set(id, (yield* effectiveCheckpoint(scope, id))?.seq ?? -1);
      return points;
    }).pipe(
      Effect.provide(
        Layer.merge(
          postgresLayer(profile),
          Wal.layer({ dir: join(vars.WORLDSTREAM_RUNS_ROOT, "wal") }),
        ),
      ),
    );

    const random = seededRandom(KILL_SEED);
    const previous = new Map(OUTPUTS.map((id) => [id, -1]));
    // Per kill: events admitted per output @ the checkpoint per output, for the report.
    const history: Array<string> = [];
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const before = (yield* gateCounts(ig, RUN)).admitted;
      const target = before + 1 + Math.floor(random() * MAX_NEW_BEFORE_KILL);
      assert.ok(target < TOTAL, "the kill must come before the world ends");
      const exited = yield* Effect.scoped(Effect.gen(function* () {
        const ws = yield* stream(PACED_SPEEDUP);
        yield* waitFor(
          `cycle ${cycle}: the gate admits ${target - before} more events`,
          gateCounts(ig, RUN).pipe(Effect.map((c) => c.admitted >= target ? c : undefined)),
          { timeoutMs: 30_000, process: ws },
        );
        return yield* ws.kill("SIGKILL");
      }));
      assert.equal(exited.signal, "SIGKILL", `cycle ${cycle}: ${tail(exited.stderr)}`);

      const points = yield* resumePoints;
      // Read after the checkpoints: the gate only grows, so this is a fair upper bound.
      const admitted = yield* gateAdmitted(ig, RUN);
      for (const id of OUTPUTS) {
        const ids = ofOutput(admitted, id).map((e) => e.event_id);
        assert.deepEqual(
          ids,
          expected.get(id)!.slice(0, ids.length),
          `cycle ${cycle}, ${id}: the gate holds a prefix of the stream, each event once`,
        );
        const seq = points.get(id)!;
        assert.ok(seq >= previous.get(id)!, `cycle ${cycle}, ${id}: checkpoint ${seq} moved back`);
        assert.ok(
          seq <= ids.length - 1,
          `cycle ${cycle}, ${id}: checkpoint ${seq} passes the ${ids.length} events admitted`,
        );
        previous.set(id, seq);
      }
      history.push(
        `${OUTPUTS.map((id) => ofOutput(admitted, id).length).join("/")}@${
          OUTPUTS.map((id) => points.get(id)).join("/")
        }`,
      );
    }
    const beforeFinal = yield* gateCounts(ig, RUN);
    assert.ok(beforeFinal.admitted < TOTAL, "the killed runs did not finish the world");

    const final = yield* Effect.scoped(
      stream(0).pipe(Effect.flatMap((ws) => ws.exited(60_000))),
    );
    assert.equal(final.code, 0, `final run: ${final.stdout}\n${tail(final.stderr)}`);
    const result = final.result as {
      status: string;
      outputs: Array<{ output_id: string; resumed_from_seq: number | null }>;
    };
    assert.equal(result.status, "STREAMED");
    for (const id of OUTPUTS) {
      const out = result.outputs.find((o) => o.output_id === id);
      const last = previous.get(id)!;
      assert.equal(out?.resumed_from_seq, last < 0 ? null : last, `${id} resumed where it stood`);
    }

    const counts = yield* gateCounts(ig, RUN);
    assert.equal(counts.admitted, TOTAL, "admitted == distinct events of the world");
    assert.equal(counts.quarantined, 0);
    const admitted = yield* gateAdmitted(ig, RUN);
    for (const id of OUTPUTS) {
      const envelopes = ofOutput(admitted, id);
      assert.deepEqual(
        envelopes.map((e) => e.event_id),
        expected.get(id),
        `${id}: the gate holds exactly the world's events, once each, in stream order`,
      );
      assertTimeOrdered(envelopes, id);
    }
    // The receipts journaled across all the crashes still form one intact chain.
    const audit = yield* auditVerifyCommand([], vars);
    assert.equal(audit.line.status, "OK", JSON.stringify(audit.line));

    console.log(
      `crash: ${CYCLES} SIGKILLs, ${TOTAL} events, ${counts.duplicate} duplicates re-sent after ` +
        `crashes, ${audit.line.count} receipts chained; admitted/checkpoints per kill: ${
          history.join(" ")
        }; ${Math.round(performance.now() - started)} ms`,
    );
  }),
);

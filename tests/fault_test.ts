import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { Effect, Layer } from "effect";
import { postgresLayer } from "../actors/runtime.ts";
import { packKey } from "../actors/supervisor.ts";
import { loadProfile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Postgres } from "../stores/postgres.ts";
import { Wal } from "../actors/wal/writer.ts";
import {
  assertTimeOrdered,
  copyDb,
  effectTest,
  type Envelope,
  expectedIds,
  gateAdmitted,
  gateCounts,
  logLines,
  ofOutput,
  OUTPUTS,
  pgliteSite,
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
  worldAt,
} from "./_testing.ts";
import { havePostgresTools, privateCluster } from "./pg_cluster.ts";

// Faults around a real worldstream process (`main.ts stream`): a gate that fails, rate-limits,
// drops connections and answers slowly; and its Postgres server stopped in the middle of a run.
// The gate runs in this process, on PGlite, so it stays up whatever happens to the rest.

const { tmp: TMP, world: WORLD, template: TEMPLATE, rows: ROWS, total: TOTAL } = await processSite(
  "fault_test_",
  4000,
);
const EXPECTED = await Effect.runPromise(expectedIds(WORLD, OUTPUTS));

/** `main.ts stream` of the whole world for `run` into `igUrl`, then `extra` flags. */
function streamWorld(
  run: string,
  igUrl: string,
  speedup: number,
  extra: ReadonlyArray<string> = [],
) {
  return streamArgs(WORLD, igUrl, {
    speedup,
    platformRunId: run,
    scenarioRunId: SCENARIO_RUN,
    extra,
  });
}

interface StreamResultLine {
  readonly status: string;
  readonly emitted: number;
  readonly reason: string | null;
  readonly dead_lettered?: number;
  readonly outputs: ReadonlyArray<{ output_id: string; status: string; emitted: number }>;
}

/** The gate admitted each of `outputId`'s events at most once, only world events, in time order. */
function assertAdmittedWell(
  envelopes: ReadonlyArray<Envelope>,
  outputId: string,
) {
  const mine = ofOutput(envelopes, outputId);
  const ids = mine.map((e) => e.event_id);
  assert.equal(new Set(ids).size, ids.length, `${outputId}: an event admitted twice`);
  const world = new Set(EXPECTED.get(outputId));
  for (const id of ids) assert.ok(world.has(id), `${outputId}: ${id} is not a world event`);
  assertTimeOrdered(mine, outputId);
  return new Set(ids);
}

// ---------------------------------------------------------------------------------------------
// A faulty gate

/**
 * profiles/local.yaml with tight retries, so that the test is quick and dead letters actually
 * happen: 2 attempts 5–20 ms apart (a 429's `Retry-After: 1` capped to 50 ms), batches of 25,
 * and dead letters passed over (`continue`) instead of stopping the output, so that the run
 * reaches the end of the world and every event ends admitted or dead-lettered. With a quarter
 * of the requests failing, ~6% of the ~210 batches fail twice: ~13 dead-lettered batches a run
 * (none at all has a chance of about one in a million). Refs are made absolute so the copy
 * works from a temp folder.
 */
async function tightProfile(path: string): Promise<string> {
  const profile = shippedProfile("local");
  profile.wiring.wsp_retry = { max_attempts: 2, base_delay_ms: 5, max_delay_ms: 20 };
  profile.wiring.wsp_courier = {
    mode: "batch",
    batch_size: 25,
    push_concurrency: 1,
    retry_after_cap_ms: 50,
    dead_letter_policy: "continue",
    max_dead_letters: 1_000_000,
  };
  await Deno.writeTextFile(path, stringify(profile));
  return path;
}

interface DeadLetterRow {
  readonly event_id: string;
  readonly output_id: string;
  readonly envelope: { event_id: string };
  readonly attempts: number;
  readonly reason: string;
}

interface ReceiptRow {
  readonly kind: string;
  readonly output_id: string | null;
  readonly body: { detail: Record<string, unknown> };
}

for (const [i, failStatus] of [503, 429].entries()) {
  effectTest(
    `a gate failing 20% with ${failStatus}, dropping 5% of connections and answering slowly: every event ends admitted or dead-lettered with a receipt`,
    Effect.gen(function* () {
      const started = performance.now();
      const run = `platform_20260101T00000${i + 1}Z`;
      const site = yield* pgliteSite(TMP, `faults-${failStatus}`, {
        template: TEMPLATE,
        bus: true,
        gate: { faults: { failRate: 0.2, failStatus, resetRate: 0.05, latencyMs: 5, seed: 7 + i } },
      });
      const { dir, vars, ig } = site;
      const profilePath = yield* Effect.promise(() => tightProfile(join(dir, "profile.yaml")));
      const exited = yield* runCommand(
        streamWorld(run, ig.url, 0, ["--profile", profilePath]),
        site,
        { timeoutMs: 90_000 },
      );
      // Dead letters passed over are not a clean run: its own status and exit code 3.
      assert.equal(exited.code, 3, `${exited.stdout}\n${tail(exited.stderr)}`);
      const result = exited.result as unknown as StreamResultLine;
      assert.equal(result.status, "STREAMED_WITH_DEAD_LETTERS");
      assert.equal(result.reason, "DEAD_LETTERED");
      const retries = logLines(exited.stderr, "IG push failed; retrying").length;
      assert.ok(retries > 0, "the faults made the runtime retry");

      // What the runtime recorded, read from its own PGlite and WAL now that it has exited.
      const profile = yield* loadProfile(profilePath, vars);
      const scope = packKey(yield* worldAt(WORLD), run, SCENARIO_RUN);
      const recorded = yield* Effect.gen(function* () {
        const pg = yield* Postgres;
        return {
          undrained: (yield* (yield* Wal).pending).length,
          dead: yield* pg.query<DeadLetterRow>(
            "select event_id, output_id, envelope, attempts, reason from ws_dead_letters where run_key = $1",
            [scope],
          ),
          receipts: yield* pg.query<ReceiptRow>(
            "select kind, output_id, body from ws_receipts where run_key = $1 order by seq",
            [scope],
          ),
        };
      }).pipe(
        Effect.provide(
          Layer.merge(
            postgresLayer(profile),
            Wal.layer({ dir: join(vars.WORLDSTREAM_RUNS_ROOT, "wal") }),
          ),
        ),
      );
      assert.equal(recorded.undrained, 0, "the WAL drained into Postgres before exit");

      const admitted = yield* gateAdmitted(ig, run);
      const counts = yield* gateCounts(ig, run);
      assert.equal(counts.admitted, admitted.length);
      assert.equal(counts.quarantined, 0);
      let deadTotal = 0;
      let overlap = 0;
      for (const id of OUTPUTS) {
        const world = EXPECTED.get(id)!;
        const admittedIds = assertAdmittedWell(admitted, id);

        // Dead letters: whole envelopes, each vouched for by a dead_letter receipt.
        const dead = recorded.dead.filter((d) => d.output_id === id);
        const deadIds = new Set(dead.map((d) => d.event_id));
        assert.equal(deadIds.size, dead.length, `${id}: an event dead-lettered twice`);
        for (const d of dead) {
          assert.equal(d.envelope.event_id, d.event_id);
          assert.equal(d.reason, "IG_PUSH_RETRY_EXHAUSTED");
          assert.equal(d.attempts, 2);
        }
        const vouched = recorded.receipts
          .filter((r) => r.kind === "dead_letter" && r.output_id === id)
          .flatMap((r) => r.body.detail.event_ids as Array<string>);
        assert.deepEqual([...vouched].sort(), [...deadIds].sort(), `${id}: dead letter receipts`);

        // Every event ends admitted or dead-lettered. A dead letter may also have been admitted:
        // an earlier attempt whose answer was lost to a dropped connection.
        for (const e of world) {
          assert.ok(admittedIds.has(e) || deadIds.has(e), `${id}: ${e} neither admitted nor dead`);
        }
        const deadOnly = [...deadIds].filter((e) => !admittedIds.has(e)).length;
        assert.equal(admittedIds.size + deadOnly, world.length, `${id}: admitted + dead-lettered`);

        // Delivery receipts cover the whole stream once, in order, and their counts add up.
        const deliveries = recorded.receipts.filter((r) =>
          r.kind === "delivery" && r.output_id === id
        );
        let next = 0;
        let handled = 0;
        for (const r of deliveries) {
          const d = r.body.detail as {
            sequence_from: number;
            sequence_to: number;
            counts: { ADMIT: number; DUPLICATE: number; QUARANTINE: number };
            dead_lettered: number;
          };
          assert.equal(d.sequence_from, next, `${id}: delivery receipts leave a gap`);
          next = d.sequence_to + 1;
          handled += d.counts.ADMIT + d.counts.DUPLICATE + d.counts.QUARANTINE + d.dead_lettered;
        }
        assert.equal(next, world.length, `${id}: delivery receipts reach the last event`);
        assert.equal(handled, world.length, `${id}: delivered + dead-lettered per the receipts`);
        deadTotal += dead.length;
        overlap += dead.length - deadOnly;
      }
      assert.ok(deadTotal > 0, "two attempts against a 25% failure rate dead-letter something");
      assert.equal(result.emitted + deadTotal, TOTAL, "delivered + dead-lettered == the world");
      assert.equal(result.dead_lettered, deadTotal, "the result counts the dead letters");
      const runEnd = recorded.receipts.find((r) => r.kind === "run_end")?.body.detail;
      assert.equal(runEnd?.status, "STREAMED_WITH_DEAD_LETTERS", "the run_end receipt says so");
      assert.equal(runEnd?.dead_lettered, deadTotal);

      console.log(
        `faults ${failStatus}: ${TOTAL} events, ${counts.admitted} admitted, ${deadTotal} ` +
          `dead-lettered (${overlap} of them admitted by a lost answer), ${counts.duplicate} ` +
          `duplicates, ${retries} retries; ${Math.round(performance.now() - started)} ms`,
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Postgres stopped mid-run

effectTest(
  "with Postgres stopped mid-run the stream keeps flowing, and once it is back the WAL drains into it",
  Effect.gen(function* () {
    const started = performance.now();
    const run = "platform_20260101T000009Z";
    const dir = yield* scopedTempDir(TMP, "pg-down");
    const cluster = yield* privateCluster(join(dir, "pgdata"));
    const vars = {
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_DB_BACKEND: "server",
      DATABASE_URL: cluster.url,
      CONTROL_BUS_ROOT: join(dir, "bus"),
    };
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const scope = packKey(yield* worldAt(WORLD), run, SCENARIO_RUN);

    // Paced so that the world takes ~11 s: Postgres goes down early and comes back well before
    // the end.
    const { exited, whileDown } = yield* Effect.scoped(Effect.gen(function* () {
      const ws = yield* spawnWorldstream(streamWorld(run, ig.url, 40_000), {
        env: processEnv(vars),
        cwd: dir,
      });
      const admittedAtLeast = (n: number) =>
        gateCounts(ig, run).pipe(Effect.map((c) => c.admitted >= n ? c.admitted : undefined));
      yield* waitFor("some events admitted", admittedAtLeast(200), {
        timeoutMs: 30_000,
        process: ws,
      });
      yield* cluster.stop;
      const atStop = (yield* gateCounts(ig, run)).admitted;
      const grown = yield* waitFor(
        "the gate keeps admitting while Postgres is down",
        admittedAtLeast(atStop + 400),
        { timeoutMs: 20_000, process: ws },
      );
      yield* cluster.start;
      return { exited: yield* ws.exited(60_000), whileDown: grown - atStop };
    }));
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal((exited.result as unknown as StreamResultLine).status, "STREAMED");
    const drainFailures = logLines(exited.stderr, "WAL drain failed").length;
    assert.ok(drainFailures > 0, "the runtime noticed Postgres was down");

    const counts = yield* gateCounts(ig, run);
    assert.equal(counts.admitted, TOTAL);
    const admitted = yield* gateAdmitted(ig, run);
    for (const id of OUTPUTS) {
      const envelopes = ofOutput(admitted, id);
      assert.deepEqual(envelopes.map((e) => e.event_id), EXPECTED.get(id), `${id}: exactly once`);
      assertTimeOrdered(envelopes, id);
    }

    // The WAL reached Postgres: the final checkpoints and the receipts are there, nothing waits.
    const stored = yield* waitFor(
      "the final checkpoints in Postgres",
      Effect.gen(function* () {
        const pg = yield* Postgres;
        const rows = yield* pg.query<{ output_id: string; last_seq: number }>(
          "select output_id, last_seq from ws_checkpoints where pack_key = $1",
          [scope],
        );
        const seqs = new Map(rows.map((r) => [r.output_id, Number(r.last_seq)]));
        if (!OUTPUTS.every((id) => seqs.get(id) === ROWS[id] - 1)) return undefined;
        const receipts = yield* pg.query<{ kind: string; n: number }>(
          "select kind, count(*)::int as n from ws_receipts where run_key = $1 group by kind",
          [scope],
        );
        return { seqs, receipts: new Map(receipts.map((r) => [r.kind, Number(r.n)])) };
      }).pipe(Effect.provide(Postgres.layerServer(cluster.url, { max: 1 }))),
      { timeoutMs: 15_000 },
    );
    assert.ok((stored.receipts.get("delivery") ?? 0) > 0, "delivery receipts stored");
    assert.equal(stored.receipts.get("run_end"), 1, "the run_end receipt stored");
    const undrained = yield* Wal.pipe(
      Effect.flatMap((wal) => wal.pending),
      Effect.provide(Wal.layer({ dir: join(vars.WORLDSTREAM_RUNS_ROOT, "wal") })),
    );
    assert.equal(undrained.length, 0, "nothing left in the WAL");

    console.log(
      `postgres down: ${TOTAL} events, ${whileDown} admitted while Postgres was down, ` +
        `${drainFailures} failed drains, ${counts.duplicate} duplicates, receipts ${
          JSON.stringify(Object.fromEntries(stored.receipts))
        }; ${Math.round(performance.now() - started)} ms`,
    );
  }),
  { ignore: !havePostgresTools() },
);

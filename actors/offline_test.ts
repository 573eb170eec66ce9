import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Logger, type Scope } from "effect";
import { publishReady } from "../actions/publish_ready.ts";
import { healthApp, type ReadyzBody } from "../api/routes/health.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Postgres } from "../stores/postgres.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { WalDrain } from "./wal/drain.ts";
import {
  CONTEXT,
  copyDb,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  SCENARIO_RUN,
  scopedTempDir,
  TRAFFIC,
  waitFor,
} from "../tests/_testing.ts";
import { havePostgresTools, privateCluster } from "../tests/pg_cluster.ts";
import { bootstrap } from "./bootstrap.ts";
import { ControlBus } from "./control_bus.ts";
import { Health } from "./health.ts";
import { runtimeLayer } from "./runtime.ts";
import { runConfigOf } from "./run_config.ts";

// Offline-first end to end, in process: the runtime on a private Postgres server that is stopped
// and started under it. The gate runs on PGlite, so it stays up whatever happens to Postgres.

/** Messages the runtime logged in the test in flight. */
let logged: Array<string> = [];
const capture = Logger.layer([
  Logger.make((o) => void logged.push(String((o.message as ReadonlyArray<unknown>)[0]))),
]);

function readyz(health: Health["Service"]) {
  return Effect.promise(async () => {
    const res = await healthApp(health).request("/readyz");
    return { code: res.status, body: await res.json() as ReadyzBody };
  });
}

/** One runtime's life on `profile`: bootstrap (edge, quick re-checks) and the whole runtime. */
function withRuntime<A, E>(
  profile: Profile,
  igUrl: string,
  body: (health: Health["Service"]) => Effect.Effect<A, E, ControlBus | ReadyLedger | WalDrain>,
) {
  return Effect.scoped(Effect.gen(function* () {
    const health = yield* Health.make;
    yield* bootstrap(profile, { baseUrl: igUrl, timeoutMs: 1000 }, {
      mode: "edge",
      pollIntervalMs: 100,
      timeoutMs: 1,
    }).pipe(Effect.provideService(Health, health));
    return yield* body(health).pipe(
      Effect.provide(
        runtimeLayer(runConfigOf(profile, { igUrl, speedup: 0 }), { pollIntervalMs: 50, health }),
      ),
    );
  }));
}

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test({
    name,
    ignore: !havePostgresTools(),
    fn: () => {
      logged = [];
      return Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(capture)));
    },
  });
}

test(
  "with Postgres down the runtime streams a READY, restarts, skips its redelivery as a duplicate and reads degraded; once Postgres is back every ledger row lands exactly once and it reads ready",
  Effect.gen(function* () {
    const tmp = yield* Effect.promise(() => fileTempDir("offline_test_"));
    const world = join(tmp, "world");
    const [template] = yield* Effect.promise(() =>
      Promise.all([pgliteTemplate(join(tmp, "bare")), makeWorld(world, 600)])
    );
    const dir = yield* scopedTempDir(tmp, "site");
    const cluster = yield* privateCluster(join(dir, "pgdata"));
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
      WORLDSTREAM_DB_BACKEND: "server",
      DATABASE_URL: cluster.url,
    });
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [CONTEXT] },
    };
    const ig = yield* startIg({ db: copyDb(template, join(dir, "ig")) });
    // First life: Postgres is up at start (the ledger seeds from it), then goes down.
    const first = yield* withRuntime(profile, ig.url, (health) =>
      Effect.gen(function* () {
        const ledger = yield* ReadyLedger;
        yield* waitFor("the ledger seeded", ledger.seeded.pipe(Effect.map((s) => s || undefined)), {
          timeoutMs: 20_000,
        });
        yield* cluster.stop;
        const published = yield* publishReady({
          engineRunRoot: world,
          profile,
          platformRunId: "platform_20260101T000001Z",
          scenarioRunId: SCENARIO_RUN,
        });
        const settled = yield* (yield* ControlBus).settled(published.message_id);
        const ready = yield* waitFor(
          "readyz degraded",
          readyz(health).pipe(Effect.map((r) => r.body.status === "degraded" ? r : undefined)),
          { timeoutMs: 10_000 },
        );
        return { published, settled, ready };
      }));
    const published = first.published;
    assert.equal(first.settled.status, "STREAMED", JSON.stringify(first.settled));
    assert.equal(first.ready.code, 200);
    assert.equal(first.ready.body.dependencies.find((d) => d.name === "postgres")?.ok, false);
    assert.ok(first.ready.body.wal!.pending_records > 0, "the WAL holds what Postgres could not");
    assert.ok(
      logged.includes("degraded: Postgres unreachable; resuming from the WAL's checkpoint"),
      "the resume checkpoint fell back to the WAL, and said so",
    );

    // Second life: Postgres is still down at start; the same READY is seen again.
    logged = [];
    const second = yield* withRuntime(profile, ig.url, (health) =>
      Effect.gen(function* () {
        const settled = yield* (yield* ControlBus).settled(published.message_id);
        const whileDown = yield* readyz(health);
        yield* cluster.start;
        const drain = yield* WalDrain;
        const drained = yield* waitFor(
          "the WAL drained into Postgres",
          drain.drainNow.pipe(Effect.map((n) => n), Effect.catch(() => Effect.succeed(undefined))),
          { timeoutMs: 30_000 },
        );
        const ready = yield* waitFor(
          "readyz ready",
          readyz(health).pipe(Effect.map((r) => r.body.status === "ready" ? r : undefined)),
          { timeoutMs: 10_000 },
        );
        assert.equal(yield* drain.drainNow, 0, "nothing left to drain");
        return { settled, whileDown, drained, ready };
      }));
    assert.equal(second.settled.status, "SKIPPED_DUPLICATE", JSON.stringify(second.settled));
    assert.equal(second.whileDown.code, 200);
    assert.equal(second.whileDown.body.status, "degraded");
    // Something waited in the WAL while Postgres was down, and none of it once it was back. The
    // drain fiber may beat drainNow to it, so who drained is not asserted, only that it happened.
    assert.ok((second.whileDown.body.wal?.pending_records ?? 0) > 0, "the WAL held records");
    assert.equal(typeof second.drained, "number");
    assert.equal(second.ready.code, 200);
    assert.equal(second.ready.body.wal?.pending_records, 0);
    assert.ok(
      logged.includes(
        "degraded: Postgres unreachable; the receipt chain continues from this runs root's head",
      ),
      "the journal started without Postgres, and said so",
    );

    const stored = yield* Effect.gen(function* () {
      const pg = yield* Postgres;
      return {
        ledger: yield* pg.query<{ status: string; attempt: number; n: number }>(
          `select status, attempt, count(*)::int as n from ws_ready_ledger where message_id = $1
           group by status, attempt order by attempt`,
          [published.message_id],
        ),
        audit: yield* pg.query<{ kind: string; n: number }>(
          `select kind, count(*)::int as n from ws_audit_events
           where detail->>'message_id' = $1 group by kind order by kind`,
          [published.message_id],
        ),
      };
    }).pipe(Effect.provide(Postgres.layerServer(cluster.url, { max: 1 })));
    assert.deepEqual(stored.ledger, [
      { status: "STREAMED", attempt: 1, n: 1 },
      { status: "SKIPPED_DUPLICATE", attempt: 2, n: 1 },
    ]);
    assert.deepEqual(stored.audit, [
      { kind: "RUN_ENDED", n: 1 },
      { kind: "RUN_READY_ACCEPTED", n: 1 },
      { kind: "RUN_READY_DUPLICATE", n: 1 },
      { kind: "RUN_READY_SEEN", n: 2 },
      { kind: "RUN_STARTED", n: 1 },
    ]);
  }),
);

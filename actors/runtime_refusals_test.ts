import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Layer, Logger, type Scope } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { CONTROL_BUS_TOPIC } from "../schemas/control_bus.ts";
import type { RunRequested } from "../schemas/messages.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { closedPort } from "../stores/postgres_testing.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { ControlBus } from "./control_bus.ts";
import { coreLayer, runtimeLayer } from "./runtime.ts";
import { Supervisor } from "./supervisor.ts";
import { runConfigOf } from "./run_config.ts";

// Requests and profiles the runtime must refuse with a reason, through the real runtime: a run
// request without a platform run, a producer the allowlist does not name, an interface pack
// without row schemas, a control bus kind it cannot serve, a bus message it cannot read. Each
// refusal comes before anything is sent, so no gate is needed: the IG URL is a closed port.

const TMP = await Deno.makeTempDir({ prefix: "runtime_refusals_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here, so each test's copy opens current (a migration costs ~2 s).
await Effect.runPromise(
  Effect.scoped(Layer.build(
    Layer.effectDiscard(migrate).pipe(
      Layer.provide(Postgres.layerPglite(BARE_DB)),
    ),
  )),
);
const WORLD = join(TMP, "world");
await Effect.runPromise(genWorld({ out: WORLD, events: 50 }).pipe(Effect.provide(DuckDb.layer())));

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const IG_URL = `http://127.0.0.1:${closedPort()}`;

/** The runtime's log lines stay off the test output. */
const quiet = Logger.layer([]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(quiet))));
}

let sites = 0;

/** `local` with its runs root, PGlite folder and control bus in a folder of the test's own. */
function site(edit: (profile: Profile) => Profile = (p) => p) {
  return Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    cpSync(BARE_DB, join(dir, "pg"), { recursive: true });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
    });
    const profile = edit({
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
    });
    return { dir, profile };
  });
}

const request = (extra: Partial<RunRequested> = {}): RunRequested => ({
  _tag: "RunRequested",
  source: "operator",
  engine_run_root: WORLD,
  platform_run_id: "platform_20260301T120000Z",
  ...extra,
});

function submit(profile: Profile, r: RunRequested) {
  return Supervisor.use((s) => s.submit(r)).pipe(
    Effect.provide(coreLayer(runConfigOf(profile, { igUrl: IG_URL, speedup: 0 }))),
  );
}

test(
  "a run request without a platform_run_id ends FAILED with PLATFORM_RUN_ID_MISSING",
  Effect.gen(function* () {
    const { profile } = yield* site();
    const { platform_run_id: _, ...withoutRun } = request();
    const result = yield* submit(profile, withoutRun);
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "PLATFORM_RUN_ID_MISSING");
    assert.equal(result.emitted, 0);
  }),
);

test(
  "a producer the allowlist does not name ends the run FAILED with PRODUCER_NOT_ALLOWED naming it",
  Effect.gen(function* () {
    const { profile } = yield* site((p) => ({ ...p, producerAllowlist: ["svc:someone_else"] }));
    const result = yield* submit(profile, request());
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "PRODUCER_NOT_ALLOWED");
    assert.match(
      result.message ?? "",
      new RegExp(`Producer ${profile.wiring.wsp_producer.producer_id} is not in the allowlist`),
    );
    assert.equal(result.emitted, 0);
  }),
);

test(
  "an interface pack without row schemas ends the run FAILED with ROW_SCHEMA_MISSING naming the output",
  Effect.gen(function* () {
    const { dir, profile } = yield* site();
    // The profile's pack, minus row_schemas.yaml (the catalogue and gates map load without it).
    const pack = join(dir, "interface_pack");
    cpSync(profile.paths.interfacePack, pack, { recursive: true });
    yield* Effect.promise(() => Deno.remove(join(pack, "row_schemas.yaml")));
    const result = yield* submit(
      { ...profile, paths: { ...profile.paths, interfacePack: pack } },
      request({ platform_run_id: "platform_20260301T120001Z" }),
    );
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "ROW_SCHEMA_MISSING");
    assert.match(result.message ?? "", new RegExp(`no row schema for ${TRAFFIC}`));
    assert.equal(result.emitted, 0);
  }),
);

test(
  "a control bus message that is not UTF-8 is settled FAILED with CONTROL_MESSAGE_UNREADABLE in the ledger",
  Effect.gen(function* () {
    const { dir, profile } = yield* site();
    const messageId = "c".repeat(64);
    const topic = join(dir, "bus", CONTROL_BUS_TOPIC);
    yield* Effect.promise(async () => {
      await Deno.mkdir(topic, { recursive: true });
      await Deno.writeFile(join(topic, `${messageId}.json`), new Uint8Array([0x7b, 0xff, 0xfe]));
    });
    const settled = yield* Effect.gen(function* () {
      const bus = yield* ControlBus;
      yield* bus.pollOnce;
      const settlement = yield* bus.settled(messageId).pipe(Effect.timeout("10 seconds"));
      const latest = yield* (yield* ReadyLedger).latest(messageId);
      return { settlement, latest };
    }).pipe(
      Effect.provide(
        runtimeLayer(runConfigOf(profile, { igUrl: IG_URL }), { pollIntervalMs: 60_000 }),
      ),
    );
    assert.equal(settled.settlement.status, "FAILED");
    assert.equal(settled.settlement.reason, "CONTROL_MESSAGE_UNREADABLE");
    assert.equal(settled.latest?.status, "FAILED");
    assert.equal(settled.latest?.reason, "CONTROL_MESSAGE_UNREADABLE");
  }),
);

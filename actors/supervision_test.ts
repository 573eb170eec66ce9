import assert from "node:assert/strict";
import { cpSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Effect, Layer, Logger, References, type Scope } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { publishReady } from "../actions/publish_ready.ts";
import { sortWorld } from "../cli/sort.ts";
import { type RunningIg, startIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { viewDir } from "../stores/stream_view_build.ts";
import { WalDrain } from "./wal/drain.ts";
import type { RunRequested } from "../schemas/messages.ts";
import { ControlBus, type ReadySettlement } from "./control_bus.ts";
import { runtimeLayer } from "./runtime.ts";
import { RunFaultHook } from "./supervisor.ts";
import { runConfigOf } from "./run_config.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// Supervision end to end: the real runtime (DuckDB, PGlite, WAL, supervisor, control bus) and
// the reference gate over loopback. A READY whose run breaks in an unexpected way must end in
// the ledger with a reason, and the same runtime must go on to stream the next READY.

const TMP = await Deno.makeTempDir({ prefix: "supervision_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
const GOOD = join(TMP, "good");
const generated = await Effect.runPromise(
  genWorld({ out: GOOD, events: 300 }).pipe(Effect.provide(DuckDb.layer())),
);
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const ROWS = generated.outputs[TRAFFIC];

/** Log lines of the test in flight, with their annotations. */
let logged: Array<
  {
    readonly level: string;
    readonly message: string;
    readonly annotations: Record<string, unknown>;
  }
> = [];
const capture = Logger.layer([
  Logger.make((o) => {
    const [first] = o.message as ReadonlyArray<unknown>;
    logged.push({
      level: o.logLevel,
      message: String(first),
      annotations: { ...o.fiber.getRef(References.CurrentLogAnnotations) },
    });
  }),
]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => {
    logged = [];
    return Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(capture)));
  });
}

interface Site {
  readonly dir: string;
  readonly profile: Profile;
  readonly ig: RunningIg;
}

let sites = 0;
/** A test's own runs root, PGlite folder, control bus and gate database; one traffic output. */
function site() {
  return Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    cpSync(BARE_DB, join(dir, "pg"), { recursive: true });
    cpSync(BARE_DB, join(dir, "ig"), { recursive: true });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
    });
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      wiring: {
        ...loaded.wiring,
        wsp_retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 10 },
      },
    };
    const ig = yield* startIg({ db: join(dir, "ig") });
    return { dir, profile, ig } satisfies Site;
  });
}

/** A copy of the good world whose traffic view is built, then one of its parts overwritten. */
function corruptWorld(name: string, how: "replace" | "middle") {
  return Effect.gen(function* () {
    const root = join(TMP, name);
    // The world without the views other tests built in it (their ids name GOOD's root).
    cpSync(GOOD, root, { recursive: true, filter: (src) => !src.includes("/stream_view") });
    const sorted = yield* sortWorld({
      engineRunRoot: root,
      outputIds: [TRAFFIC],
      strict: false,
      requireGatePass: true,
    }).pipe(Effect.provide(DuckDb.layer()));
    assert.equal(sorted.status, "OK", sorted.message);
    const dir = viewDir(join(root, "stream_view", "ts_utc"), TRAFFIC);
    const parts = readdirSync(dir).filter((f) => f.startsWith("part-"));
    assert.ok(parts.length > 0, "the view has parts");
    const file = join(dir, parts[0]);
    if (how === "replace") {
      writeFileSync(file, new TextEncoder().encode("not a parquet file at all"));
    } else {
      // Magic bytes and footer kept: the file opens, its data pages are garbage.
      const bytes = Deno.readFileSync(file);
      const footer = new DataView(bytes.buffer).getUint32(bytes.length - 8, true) + 8;
      for (let i = 4; i < bytes.length - footer; i++) bytes[i] = (i * 7919) & 0xff;
      writeFileSync(file, bytes);
    }
    return root;
  });
}

let runs = 0;
function platformRun(): string {
  return `platform_20260201T0000${String(++runs).padStart(2, "0")}Z`;
}

interface Seen {
  readonly platformRunId: string;
  readonly settled: ReadySettlement;
  readonly ledger: { readonly status: string; readonly reason?: string | null } | undefined;
}

/**
 * One runtime serving the control bus while READYs for `worlds` are published one after the
 * other, each after the previous one settled; then the WAL is drained and the run_end receipts
 * read from Postgres.
 */
function serveInTurn(
  s: Site,
  worlds: ReadonlyArray<string>,
  faultHook?: (request: RunRequested) => Effect.Effect<void>,
) {
  const runtime = runtimeLayer(runConfigOf(s.profile, { igUrl: s.ig.url, speedup: 0 }), {
    pollIntervalMs: 20,
  });
  const layer = faultHook
    ? runtime.pipe(Layer.provide(Layer.succeed(RunFaultHook, faultHook)))
    : runtime;
  return Effect.gen(function* () {
    const bus = yield* ControlBus;
    const ledger = yield* ReadyLedger;
    const seen: Array<Seen> = [];
    for (const world of worlds) {
      const platformRunId = platformRun();
      const published = yield* publishReady({
        engineRunRoot: world,
        profile: s.profile,
        platformRunId,
      });
      // A wedged runtime never settles it: fail instead of hanging the suite.
      const settled = yield* bus.settled(published.message_id).pipe(Effect.timeout("90 seconds"));
      seen.push({ platformRunId, settled, ledger: yield* ledger.latest(published.message_id) });
    }
    yield* (yield* WalDrain).drainNow;
    const rows = yield* (yield* Postgres).query<{ body: { detail: Record<string, unknown> } }>(
      "select body from ws_receipts where kind = 'run_end' order by seq",
    );
    return { seen, runEnds: rows.map((r) => r.body.detail) };
  }).pipe(Effect.provide(layer));
}

function assertStreamed(seen: Seen) {
  assert.equal(seen.settled.status, "STREAMED", JSON.stringify(seen.settled));
  assert.equal(seen.settled.result?.emitted, ROWS);
  assert.equal(seen.ledger?.status, "STREAMED");
}

test(
  "a run that dies of a defect ends FAILED INTERNAL_ERROR with its receipt and ledger entry, and the next READY is streamed by the same runtime",
  Effect.gen(function* () {
    const s = yield* site();
    // The first run dies of an exception thrown where none was expected (a bug), after its
    // run_start receipt: the same world is then served again under a new platform run.
    let injected = 0;
    const { seen: [broken, good], runEnds } = yield* serveInTurn(
      s,
      [GOOD, GOOD],
      () =>
        injected++ === 0
          ? Effect.sync(() => JSON.parse("{ not json")).pipe(Effect.asVoid)
          : Effect.void,
    );
    assert.equal(broken.settled.status, "FAILED");
    assert.equal(broken.settled.reason, "INTERNAL_ERROR");
    assert.match(broken.settled.result?.message ?? "", /JSON/);
    assert.equal(broken.ledger?.status, "FAILED");
    assert.equal(broken.ledger?.reason, "INTERNAL_ERROR");
    const ended = runEnds.find((d) => d.platform_run_id === broken.platformRunId);
    assert.ok(ended, `no run_end receipt for the broken run in ${JSON.stringify(runEnds)}`);
    assert.equal(ended.status, "FAILED");
    assert.equal(ended.reason, "INTERNAL_ERROR");
    assert.equal(ended.message, broken.settled.result?.message);
    const logged_ = logged.find((l) => l.message === "run_defect");
    assert.ok(logged_, "the defect was logged");
    assert.equal(logged_.annotations.platform_run_id, broken.platformRunId);

    assertStreamed(good);
    const goodEnd = runEnds.find((d) => d.platform_run_id === good.platformRunId);
    assert.equal(goodEnd?.status, "STREAMED");
  }),
);

test(
  "a world whose stream view has a corrupt part ends FAILED with a reason code, and the next READY is streamed by the same runtime",
  Effect.gen(function* () {
    const s = yield* site();
    const replaced = yield* corruptWorld("corrupt-replaced", "replace");
    const garbled = yield* corruptWorld("corrupt-garbled", "middle");
    const { seen: [first, second, good] } = yield* serveInTurn(s, [replaced, garbled, GOOD]);
    for (const bad of [first, second]) {
      assert.equal(bad.settled.status, "FAILED", JSON.stringify(bad.settled));
      assert.match(bad.settled.reason ?? "", /^[A-Z_]+$/);
      assert.equal(bad.ledger?.status, "FAILED");
      assert.equal(bad.ledger?.reason, bad.settled.reason);
      assert.equal(bad.settled.result?.emitted, 0);
    }
    // A file that is not parquet at all, then one whose pages are garbage behind a good footer.
    assert.equal(first.settled.reason, "PARQUET_UNREADABLE");
    assert.equal(second.settled.reason, "DUCKDB_ERROR");
    assertStreamed(good);
  }),
);

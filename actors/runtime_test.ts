import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Fiber, Layer, Logger, type Scope } from "effect";
import { sha256Hex } from "../core/hash.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { readyContext } from "../core/ready.ts";
import { resolveOutput, resolveWorld } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { publishReady } from "../actions/publish_ready.ts";
import { type RunningIg, startIg, type StartIgOptions } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { CONTROL_BUS_TOPIC } from "../schemas/control_bus.ts";
import type { RunRequested, StreamResult } from "../schemas/messages.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { WalDrain } from "./wal/drain.ts";
import { Postgres } from "../stores/postgres.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { viewDir } from "../stores/stream_view_build.ts";
import { openViewReader, streamViewId } from "../stores/stream_view_read.ts";
import { ControlBus } from "./control_bus.ts";
import { coreLayer, runtimeLayer } from "./runtime.ts";
import { Shutdown } from "./shutdown.ts";
import { Supervisor } from "./supervisor.ts";
import { platformEnvelopeValidator } from "../tests/platform_envelope.ts";
import { runConfigOf } from "./run_config.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// End to end: the runtime (DuckDB, PGlite, supervisor, streamers, courier lanes, checkpoints,
// control bus) streaming one generated world into the reference gate over loopback HTTP. Each
// test gets its own worldstream database and gate database, both copies of one initialised
// PGlite folder; the world (and its stream views, built by the first run) is shared.

const TMP = await Deno.makeTempDir({ prefix: "runtime_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
const WORLD = join(TMP, "world");
const generated = await Effect.runPromise(
  genWorld({ out: WORLD, events: 1500 }).pipe(Effect.provide(DuckDb.layer())),
);

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const CONTEXT = "arrival_events_5B";
const OUTPUTS = [TRAFFIC, CONTEXT];
const ROWS: Record<string, number> = {
  [TRAFFIC]: generated.outputs[TRAFFIC],
  [CONTEXT]: generated.outputs[CONTEXT],
};
const TOTAL = ROWS[TRAFFIC] + ROWS[CONTEXT];
const BATCH = 200;
const SCENARIO_RUN = "0123456789abcdef0123456789abcdef";
const API_KEY = "runtime-test-key";

/** Log lines of the test in flight (the runtime's own output stays off the test output). */
let logged: Array<{ readonly level: string; readonly message: string }> = [];
const capture = Logger.layer([
  Logger.make((o) => {
    const [first] = o.message as ReadonlyArray<unknown>;
    logged.push({ level: o.logLevel, message: String(first) });
  }),
]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => {
    logged = [];
    return Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(capture)));
  });
}

let platformRuns = 0;
/** A fresh platform run id. */
function platformRun(): string {
  return `platform_20260101T0000${String(++platformRuns).padStart(2, "0")}Z`;
}

interface Site {
  readonly dir: string;
  readonly profile: Profile;
  readonly igDb: string;
}

let sites = 0;

/**
 * A test's own folders and profile: `local` with its runs root, PGlite folder and control bus
 * moved into a temp folder, two outputs, tiny retry delays and batches of BATCH.
 */
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
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [CONTEXT] },
      wiring: {
        ...loaded.wiring,
        wsp_retry: { max_attempts: 8, base_delay_ms: 1, max_delay_ms: 10 },
        wsp_courier: { mode: "batch", batch_size: BATCH, retry_after_cap_ms: 20 },
      },
    };
    return { dir, profile, igDb: join(dir, "ig") } satisfies Site;
  });
}

function gate(s: Site, options: Omit<StartIgOptions, "db"> = {}) {
  return startIg({ db: s.igDb, ...options });
}

/** A port nothing listens on (for now). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function request(platformRunId: string, extra: Partial<RunRequested> = {}): RunRequested {
  return {
    _tag: "RunRequested",
    source: "operator",
    engine_run_root: WORLD,
    platform_run_id: platformRunId,
    scenario_run_id: SCENARIO_RUN,
    ...extra,
  };
}

const submit = (r: RunRequested) =>
  Effect.gen(function* () {
    return yield* (yield* Supervisor).submit(r);
  });

function outputOf(result: StreamResult, outputId: string) {
  const found = result.outputs?.find((o) => o.output_id === outputId);
  assert.ok(found, `no result for ${outputId} in ${JSON.stringify(result)}`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// What the gate saw

function igGet(ig: RunningIg, path: string, apiKey?: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}${path}`, {
      headers: apiKey ? { "X-IG-Api-Key": apiKey } : {},
    });
    assert.equal(res.status, 200, `GET ${path}`);
    return await res.text();
  });
}

/** The gate's counts for one platform run. */
function counts(ig: RunningIg, platformRunId: string, apiKey?: string) {
  return igGet(ig, "/v1/ops/stats", apiKey).pipe(Effect.map((text) => {
    const all = JSON.parse(text) as Record<string, Record<string, number>>;
    return all[platformRunId] ?? { admitted: 0, duplicate: 0, quarantined: 0 };
  }));
}

type Envelope = Record<string, unknown> & { event_id: string; event_type: string; ts_utc: string };

/** Admitted envelopes of one platform run, in admission order. */
function admitted(ig: RunningIg, platformRunId: string) {
  return igGet(ig, `/v1/ops/admitted?platform_run_id=${platformRunId}`).pipe(
    Effect.map((text) =>
      text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Envelope)
    ),
  );
}

/** Admitted event ids of one output, in admission order. */
function admittedIds(envelopes: ReadonlyArray<Envelope>, outputId: string) {
  return envelopes.filter((e) => e.event_type === outputId).map((e) => e.event_id);
}

// ---------------------------------------------------------------------------------------------
// What the gate should see, computed independently from the stream views (ARCHITECTURE §5):
// event_id = sha256_hex(join("|", [output_id] + [str(row[k]) for k in primary_key] +
// [mf, ph, seed, scenario_id])), in view order.

const expectedCache = new Map<string, ReadonlyArray<string>>();

function expectedIds(outputId: string) {
  const cached = expectedCache.get(outputId);
  if (cached) return Effect.succeed(cached);
  return Effect.scoped(Effect.gen(function* () {
    const world = yield* resolveWorld(WORLD, { strict: false, requireGatePass: true }).pipe(
      Effect.provide(OracleStore.layer),
    );
    const output = yield* resolveOutput(world, outputId);
    const { manifest_fingerprint, parameter_hash, seed, scenario_id } = world.worldKey;
    const cursor = yield* openViewReader(
      viewDir(join(world.engineRunRoot, "stream_view", "ts_utc"), outputId),
      {
        streamViewId: streamViewId({
          engineRunId: world.runReceipt.run_id,
          worldKey: world.worldKey,
          outputId,
        }),
        outputId,
      },
    );
    const ids: Array<string> = [];
    for (let rows = yield* cursor.next; rows !== undefined; rows = yield* cursor.next) {
      for (const { row } of rows) {
        const key = output.entry.primary_key.map((k) => String(row[k]));
        ids.push(sha256Hex(
          [outputId, ...key, manifest_fingerprint, parameter_hash, String(seed), scenario_id]
            .join("|"),
        ));
      }
    }
    expectedCache.set(outputId, ids);
    return ids as ReadonlyArray<string>;
  })).pipe(Effect.provide(DuckDb.layer()));
}

/** Each output's admitted envelopes are exactly its view's events, once each, in view order. */
function assertExactlyOnceInOrder(envelopes: ReadonlyArray<Envelope>) {
  return Effect.gen(function* () {
    for (const outputId of OUTPUTS) {
      const ids = admittedIds(envelopes, outputId);
      const expected = yield* expectedIds(outputId);
      assert.equal(expected.length, ROWS[outputId]);
      assert.equal(new Set(ids).size, ids.length, `${outputId}: an event admitted twice`);
      assert.deepEqual(ids, expected, `${outputId}: admitted events differ from the view's`);
      const times = envelopes.filter((e) => e.event_type === outputId).map((e) => e.ts_utc);
      for (let i = 1; i < times.length; i++) {
        assert.ok(
          times[i - 1] <= times[i],
          `${outputId}: ${times[i]} admitted after ${times[i - 1]}`,
        );
      }
    }
  });
}

// The platform's envelope schema, beside this repository when its contracts are checked out.
/** Polls `probe` until it yields a value, failing after `timeoutMs`. */
function eventually<A>(
  what: string,
  probe: Effect.Effect<A | undefined, unknown>,
  timeoutMs = 20_000,
) {
  return Effect.gen(function* () {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const value = yield* probe;
      if (value !== undefined) return value;
      if (performance.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
      yield* Effect.sleep(20);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Supervisor.submit

test(
  "a run streams every event of two outputs to the gate exactly once, each output in time order",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const run = platformRun();
    const result = yield* submit(request(run)).pipe(
      Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))),
    );
    assert.equal(result.status, "STREAMED", result.message);
    assert.equal(result.reason, null);
    assert.equal(result.emitted, TOTAL);
    assert.deepEqual([...result.output_ids].sort(), [...OUTPUTS].sort());
    for (const id of OUTPUTS) {
      const out = outputOf(result, id);
      assert.equal(out.status, "STREAMED");
      assert.equal(out.emitted, ROWS[id]);
      assert.equal(out.admitted, ROWS[id]);
      assert.equal(out.resumed_from_seq, null);
    }
    assert.deepEqual(yield* counts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
    const envelopes = yield* admitted(ig, run);
    yield* assertExactlyOnceInOrder(envelopes);

    const validate = platformEnvelopeValidator();
    if (validate === undefined) {
      console.log("CONFORMANCE skipped: ../shared/contracts/fraud-platform is absent");
      return;
    }
    for (const envelope of envelopes) {
      const problem = validate(envelope);
      assert.equal(problem, undefined, `${envelope.event_type} ${envelope.event_id}: ${problem}`);
    }
  }),
);

test(
  "a rerun of the same platform run resumes after its checkpoint and admits the rest in order",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const run = platformRun();
    const N = 333;
    const [first, second, third] = yield* Effect.gen(function* () {
      const first = yield* submit(request(run, { max_events_per_output: N }));
      const second = yield* submit(request(run));
      const third = yield* submit(request(run));
      return [first, second, third];
    }).pipe(Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))));
    assert.equal(first.status, "STREAMED", first.message);
    assert.equal(first.emitted, 2 * N);
    assert.equal(second.status, "STREAMED", second.message);
    for (const id of OUTPUTS) {
      assert.equal(outputOf(second, id).resumed_from_seq, N - 1, id);
      assert.equal(outputOf(second, id).emitted, ROWS[id] - N, id);
    }
    assert.equal(third.status, "STREAMED", third.message);
    assert.equal(third.emitted, 0, "a finished run has nothing left to send");
    const c = yield* counts(ig, run);
    assert.equal(c.admitted, TOTAL);
    assert.ok(c.duplicate <= BATCH, `${c.duplicate} duplicates`);

    yield* assertExactlyOnceInOrder(yield* admitted(ig, run));
  }),
);

test(
  "a new platform run starts from the first row whatever another run delivered",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const [before, after] = [platformRun(), platformRun()];
    const [capped, result] = yield* Effect.gen(function* () {
      const capped = yield* submit(request(before, { max_events: 250 }));
      return [capped, yield* submit(request(after))];
    }).pipe(Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))));
    assert.equal(capped.status, "STREAMED", capped.message);
    assert.equal(capped.emitted, 250, "max_events caps the run as a whole");
    assert.equal((yield* counts(ig, before)).admitted, 250);
    assert.equal(result.status, "STREAMED", result.message);
    for (const id of OUTPUTS) assert.equal(outputOf(result, id).resumed_from_seq, null);
    assert.deepEqual(yield* counts(ig, after), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
    yield* assertExactlyOnceInOrder(yield* admitted(ig, after));
  }),
);

for (const failStatus of [503, 429] as const) {
  test(
    `a run rides out a burst of ${failStatus} answers by retrying, and everything is admitted once`,
    Effect.gen(function* () {
      const s = yield* site();
      const ig = yield* gate(s, { faults: { failRate: 0.3, failStatus, seed: 21 } });
      const run = platformRun();
      const result = yield* submit(request(run)).pipe(
        Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))),
      );
      assert.equal(result.status, "STREAMED", result.message);
      const retried = logged.filter((l) => l.message === "IG push failed; retrying");
      assert.ok(retried.length > 0, "the runtime reported retries");
      assert.deepEqual(yield* counts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
      yield* assertExactlyOnceInOrder(yield* admitted(ig, run));
    }),
  );
}

test(
  "a gate that refuses the runtime's credentials fails the run with IG_PUSH_REJECTED and admits nothing",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s, { apiKey: API_KEY });
    const run = platformRun();
    const { result, checkpoints } = yield* Effect.gen(function* () {
      const result = yield* submit(request(run));
      yield* (yield* WalDrain).drainNow;
      const pg = yield* Postgres;
      const checkpoints = yield* pg.query("select * from ws_checkpoints");
      return { result, checkpoints };
    }).pipe(Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))));
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "IG_PUSH_REJECTED");
    for (const id of OUTPUTS) assert.equal(outputOf(result, id).reason, "IG_PUSH_REJECTED");
    assert.deepEqual(checkpoints, [], "no checkpoint moved");
    assert.deepEqual(yield* counts(ig, run, API_KEY), {
      admitted: 0,
      duplicate: 0,
      quarantined: 0,
    });
  }),
);

test(
  "a stop request ends a paced run with STOPPED_BY_OPERATOR, checkpoints match the gate, and a rerun completes",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const run = platformRun();
    // Paced so that the whole world would take minutes: the stop comes early in it.
    const stopped = yield* Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(submit(request(run, { speedup: 20_000 })));
      yield* eventually(
        "a few batches admitted",
        counts(ig, run).pipe(Effect.map((c) => c.admitted >= 50 ? true : undefined)),
      );
      yield* (yield* Shutdown).request;
      const result = yield* Fiber.join(fiber);
      // Checkpoints reach Postgres through the WAL drain: drain now, then read them there.
      yield* (yield* WalDrain).drainNow;
      const pg = yield* Postgres;
      const rows = yield* pg.query<{ output_id: string; last_seq: number }>(
        "select output_id, last_seq from ws_checkpoints",
      );
      return { result, checkpoint: new Map(rows.map((r) => [r.output_id, Number(r.last_seq)])) };
    }).pipe(Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url }))));
    assert.equal(stopped.result.status, "FAILED");
    assert.equal(stopped.result.reason, "STOPPED_BY_OPERATOR");
    for (const id of OUTPUTS) assert.equal(outputOf(stopped.result, id).status, "STOPPED");

    const sofar = yield* admitted(ig, run);
    assert.ok(sofar.length < TOTAL, "stopped early");
    for (const id of OUTPUTS) {
      const ids = admittedIds(sofar, id);
      const last = stopped.checkpoint.get(id) ?? -1;
      assert.equal(last + 1, ids.length, `${id}: the checkpoint is where the gate is`);
      assert.deepEqual(ids, (yield* expectedIds(id)).slice(0, ids.length));
    }

    // The stop is for that process's life: a restarted runtime picks the run up.
    const rerun = yield* submit(request(run)).pipe(
      Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))),
    );
    assert.equal(rerun.status, "STREAMED", rerun.message);
    for (const id of OUTPUTS) {
      assert.equal(outputOf(rerun, id).resumed_from_seq, stopped.checkpoint.get(id) ?? null);
    }
    assert.deepEqual(yield* counts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
    yield* assertExactlyOnceInOrder(yield* admitted(ig, run));
  }),
);

// ---------------------------------------------------------------------------------------------
// READY through the control bus

test(
  "a READY on the bus is streamed; the same READY seen again after a restart is SKIPPED_DUPLICATE",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const run = platformRun();
    const layer = () =>
      runtimeLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }), { pollIntervalMs: 50 });
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: s.profile,
      platformRunId: run,
    });
    const first = yield* Effect.gen(function* () {
      const settled = yield* (yield* ControlBus).settled(published.message_id);
      const latest = yield* (yield* ReadyLedger).latest(published.message_id);
      return { settled, latest };
    }).pipe(Effect.provide(layer()));
    assert.equal(first.settled.status, "STREAMED", JSON.stringify(first.settled));
    assert.equal(first.settled.result?.emitted, TOTAL);
    assert.equal(first.latest?.status, "STREAMED");
    assert.deepEqual(yield* counts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });

    // A restarted runtime finds the same message on the bus.
    const second = yield* Effect.gen(function* () {
      const settled = yield* (yield* ControlBus).settled(published.message_id);
      const latest = yield* (yield* ReadyLedger).latest(published.message_id);
      return { settled, latest };
    }).pipe(Effect.provide(layer()));
    assert.equal(second.settled.status, "SKIPPED_DUPLICATE");
    assert.equal(second.latest?.status, "SKIPPED_DUPLICATE");
    assert.deepEqual(yield* counts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
    yield* assertExactlyOnceInOrder(yield* admitted(ig, run));
  }),
);

test(
  "invalid messages on the bus are recorded FAILED with their reason, and nothing is streamed",
  Effect.gen(function* () {
    const s = yield* site();
    const ig = yield* gate(s);
    const topicDir = join(s.dir, "bus", CONTROL_BUS_TOPIC);
    yield* Effect.promise(() => Deno.mkdir(topicDir, { recursive: true }));
    yield* Effect.promise(() => Deno.writeTextFile(join(topicDir, "garbled.json"), "{not json"));
    // A well-formed READY whose run facts view has gone missing.
    const run = platformRun();
    const orphan = yield* publishReady({
      engineRunRoot: WORLD,
      profile: s.profile,
      platformRunId: run,
    });
    yield* Effect.promise(() => Deno.remove(join(s.dir, orphan.facts_view_ref)));

    const seen = yield* Effect.gen(function* () {
      const bus = yield* ControlBus;
      const ledger = yield* ReadyLedger;
      const garbled = yield* bus.settled("garbled");
      const missing = yield* bus.settled(orphan.message_id);
      return {
        garbled,
        missing,
        garbledLedger: yield* ledger.latest("garbled"),
        missingLedger: yield* ledger.latest(orphan.message_id),
      };
    }).pipe(
      Effect.provide(
        runtimeLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }), { pollIntervalMs: 50 }),
      ),
    );
    assert.equal(seen.garbled.status, "FAILED");
    assert.equal(seen.garbled.reason, "CONTROL_ENVELOPE_INVALID");
    assert.equal(seen.garbledLedger?.status, "FAILED");
    assert.equal(seen.garbledLedger?.reason, "CONTROL_ENVELOPE_INVALID");
    assert.equal(seen.missing.status, "FAILED");
    assert.equal(seen.missing.reason, "FACTS_VIEW_MISSING");
    assert.equal(seen.missingLedger?.status, "FAILED");
    assert.deepEqual(yield* counts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "a READY while the gate is down is DEFERRED_DOWNSTREAM_NOT_READY, never STREAMED, and streams once the gate is up",
  Effect.gen(function* () {
    const s = yield* site();
    const port = freePort();
    const run = platformRun();
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: s.profile,
      platformRunId: run,
    });
    const profile = s.profile;
    const bus = ControlBus.layer({
      root: profile.paths.controlBusRoot!,
      topic: profile.wiring.control_bus.topic,
      context: readyContext(profile),
      pollIntervalMs: 50,
      deferRetryMs: 100,
    }).pipe(
      Layer.provideMerge(
        coreLayer(runConfigOf(profile, { igUrl: `http://127.0.0.1:${port}`, speedup: 0 })),
      ),
    );
    const outcome = yield* Effect.gen(function* () {
      const ledger = yield* ReadyLedger;
      const deferred = yield* eventually(
        "a deferral",
        ledger.latest(published.message_id).pipe(
          Effect.map((l) => l?.status === "DEFERRED_DOWNSTREAM_NOT_READY" ? l : undefined),
        ),
      );
      const streamedWhileDown = yield* ledger.isStreamed(published.message_id);
      const ig = yield* startIg({ db: s.igDb, port });
      const settled = yield* (yield* ControlBus).settled(published.message_id);
      return { deferred, streamedWhileDown, ig, settled };
    }).pipe(Effect.provide(bus));
    assert.equal(outcome.deferred.reason, "IG_UNREACHABLE");
    assert.equal(outcome.streamedWhileDown, false);
    assert.equal(outcome.settled.status, "STREAMED", JSON.stringify(outcome.settled));
    assert.deepEqual(yield* counts(outcome.ig, run), {
      admitted: TOTAL,
      duplicate: 0,
      quarantined: 0,
    });
  }),
);

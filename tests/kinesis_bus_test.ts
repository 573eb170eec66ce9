import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { loadProfile, selectOutputIds } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import type { ReadyzBody } from "../api/routes/health.ts";
import {
  copyDb,
  fileTempDir,
  freePort,
  gateCounts,
  logLines,
  makeWorld,
  pgliteTemplate,
  processEnv,
  scopedTempDir,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";
import {
  createStream,
  type Kinesalite,
  KINESIS_ENV,
  kinesisProfile,
  putRecord,
  startKinesalite,
} from "./kinesalite.ts";

// The Kinesis control bus through the real commands, against kinesalite on loopback: the
// platform's Scenario Runner (here `publish-ready --bus kinesis`) puts READY records on a stream,
// `run` reads every shard, streams each READY into the reference gate and saves how far it got
// per shard, so a restart neither misses nor re-handles a message.

const TMP = await fileTempDir("kinesis_bus_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 600),
]);
const SELECTED = selectOutputIds(
  await Effect.runPromise(loadProfile("local_parity", {
    IG_INGEST_URL: "http://127.0.0.1:1",
    DATABASE_URL: "postgres://x@127.0.0.1/x",
    CONTROL_BUS_STREAM: "fp-control",
  })),
);
const WORLD_EVENTS = [...SELECTED.traffic, ...SELECTED.context].reduce((n, id) => n + ROWS[id], 0);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

let streams = 0;

/** A site of its own: a stream, a runs root, a PGlite copy, a gate and a Kinesis profile. */
function site(k: Kinesalite, name: string, options: { readonly shards?: number } = {}) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const stream = `fp-control-${++streams}`;
    yield* Effect.promise(() => createStream(k, stream, options.shards ?? 1));
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const profile = kinesisProfile(join(dir, "kinesis.yaml"), {
      endpoint: k.endpoint,
      stream,
      runsRoot: join(dir, "runs"),
      pgliteDir: copyDb(TEMPLATE, join(dir, "pg")),
      igUrl: ig.url,
    });
    const env = processEnv({
      ...KINESIS_ENV,
      WORLDSTREAM_RECEIPT_HMAC_KEY: "kinesis-bus-test-hmac-key-0123456789",
      // A profile other than local serves the admin API only with an operator token.
      WORLDSTREAM_ADMIN_TOKEN: "kinesis-bus-test-admin-token-0123456789",
      WSP_STREAM_SPEEDUP: "0",
      WSP_COURIER_MODE: "batch",
    });
    const command = (args: ReadonlyArray<string>) =>
      Effect.scoped(
        spawnWorldstream([...args, "--profile", profile], { env, cwd: dir }).pipe(
          Effect.flatMap((ws) => ws.exited(180_000)),
        ),
      );
    return { dir, stream, ig, profile, env, command, runsRoot: join(dir, "runs") };
  });
}

/** The READY ledger's latest decision per message (its summary file in the runs root). */
function ledger(runsRoot: string) {
  const latest = new Map<
    string,
    { attempts: number; latest: { status: string; reason: string | null } }
  >();
  const file = join(runsRoot, "ready_ledger.ndjson");
  if (!existsSync(file)) return latest;
  for (const line of Deno.readTextFileSync(file).split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line);
    if (typeof entry.message_id === "string") latest.set(entry.message_id, entry);
  }
  return latest;
}

test(
  "a READY from publish-ready --bus kinesis is streamed by run --once; malformed records are FAILED without blocking the shard; a restart re-handles nothing",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k, "once");

    // The platform publishes a READY for run A.
    const published = yield* s.command([
      "publish-ready",
      "--bus",
      "kinesis",
      "--engine-run-root",
      WORLD,
      "--platform-run-id",
      "platform_20260301T000001Z",
    ]);
    assert.equal(published.code, 0, `${published.stdout}\n${tail(published.stderr)}`);
    const a = published.result as Record<string, string>;
    assert.equal(a.status, "PUBLISHED");
    assert.equal(a.bus, "kinesis");
    assert.equal(a.stream, s.stream);
    assert.match(a.sequence_number, /^\d+$/);

    // Then garbage on the same shard: bytes that are not UTF-8, text that is not JSON, an
    // envelope whose READY is invalid.
    const bad = [
      yield* Effect.promise(() => putRecord(k, s.stream, new Uint8Array([0xff, 0xfe, 0x00]), "x")),
      yield* Effect.promise(() => putRecord(k, s.stream, "{not json", "x")),
      yield* Effect.promise(() =>
        putRecord(
          k,
          s.stream,
          JSON.stringify({
            topic: "fp.bus.control.v1",
            message_id: "f".repeat(64),
            published_at_utc: "2026-03-01T00:00:00.000000Z",
            attributes: { kind: "READY", run_id: "platform_20260301T000002Z" },
            partition_key: "platform_20260301T000002Z",
            payload: { run_id: "nope" },
          }),
          "x",
        )
      ),
    ];

    // run --once publishes its own READY (run B) on the stream and waits for it: everything
    // before it on the shard is handled first.
    const once = yield* s.command(["run", "--once", "--engine-run-root", WORLD]);
    assert.equal(once.code, 0, `${once.stdout}\n${tail(once.stderr, 40)}`);
    const b = once.result as Record<string, unknown>;
    assert.equal(b.status, "STREAMED");
    assert.equal(b.emitted, WORLD_EVENTS);

    const counts = {
      a: yield* gateCounts(s.ig, a.platform_run_id),
      b: yield* gateCounts(s.ig, String(b.platform_run_id)),
    };
    assert.equal(counts.a.admitted, WORLD_EVENTS, "run A streamed whole");
    assert.equal(counts.b.admitted, WORLD_EVENTS, "run B streamed whole");

    const after = ledger(s.runsRoot);
    assert.equal(after.get(a.message_id)?.latest.status, "STREAMED");
    const failed = bad.slice(0, 2).map((r) =>
      after.get(`kinesis:${s.stream}/${r.shardId}/${r.sequenceNumber}`)
    );
    assert.deepEqual(failed.map((f) => f?.latest.status), ["FAILED", "FAILED"]);
    assert.deepEqual(failed.map((f) => f?.latest.reason), [
      "CONTROL_MESSAGE_UNREADABLE",
      "CONTROL_ENVELOPE_INVALID",
    ]);
    // The third carries its own message id: FAILED under it.
    assert.equal(after.get("f".repeat(64))?.latest.status, "FAILED");
    assert.equal(after.get("f".repeat(64))?.latest.reason, "READY_INVALID");

    // A restart serves the stream from its saved positions: the platform's next READY (run C) is
    // streamed, and nothing before it is handled again.
    yield* Effect.scoped(Effect.gen(function* () {
      const port = freePort();
      const ws = yield* spawnWorldstream(
        ["run", "--profile", s.profile, "--admin-port", String(port)],
        { env: s.env, cwd: s.dir },
      );
      const c = yield* s.command([
        "publish-ready",
        "--bus",
        "kinesis",
        "--engine-run-root",
        WORLD,
        "--platform-run-id",
        "platform_20260301T000003Z",
      ]);
      assert.equal(c.code, 0, c.stdout);
      yield* waitFor(
        "the gate admits run C",
        gateCounts(s.ig, "platform_20260301T000003Z").pipe(
          Effect.map((n) => n.admitted >= WORLD_EVENTS ? n : undefined),
        ),
        { timeoutMs: 120_000, process: ws },
      );
      yield* waitFor(
        "run C is STREAMED in the ledger",
        Effect.sync(() =>
          ledger(s.runsRoot).get(String(c.result?.message_id))?.latest.status === "STREAMED"
            ? true
            : undefined
        ),
        { timeoutMs: 30_000, process: ws },
      );
      const stopped = yield* ws.kill("SIGTERM");
      assert.equal(stopped.code, 0, tail(stopped.stderr));
    }));
    const restarted = ledger(s.runsRoot);
    for (const [id, entry] of after) {
      assert.deepEqual(restarted.get(id), entry, `message ${id} was not handled again`);
    }
    assert.deepEqual(yield* gateCounts(s.ig, a.platform_run_id), counts.a);
    assert.deepEqual(yield* gateCounts(s.ig, String(b.platform_run_id)), counts.b);
  }),
);

test(
  "a Kinesis stream that does not exist: publish-ready fails CONTROL_BUS_STREAM_MISSING naming it and writes nothing; run in backend mode waits, then fails with that code; run in edge mode serves degraded and reads the stream once it is made",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const dir = yield* scopedTempDir(TMP, "missing");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const runsRoot = join(dir, "runs");
    const stream = "no-such-stream";
    const profileFor = (mode: "edge" | "backend") =>
      kinesisProfile(join(dir, `kinesis-${mode}.yaml`), {
        endpoint: k.endpoint,
        stream,
        runsRoot,
        pgliteDir: join(dir, "pg"),
        igUrl: ig.url,
        pollIntervalMs: 200,
        bootstrap: { mode, poll_interval_seconds: 0.2, timeout_seconds: 5 },
      });
    copyDb(TEMPLATE, join(dir, "pg"));
    const env = processEnv({
      ...KINESIS_ENV,
      WORLDSTREAM_RECEIPT_HMAC_KEY: "kinesis-bus-test-hmac-key-0123456789",
      // A profile other than local serves the admin API only with an operator token.
      WORLDSTREAM_ADMIN_TOKEN: "kinesis-bus-test-admin-token-0123456789",
      WSP_STREAM_SPEEDUP: "0",
      WSP_COURIER_MODE: "batch",
    });
    const command = (args: ReadonlyArray<string>) =>
      Effect.scoped(
        spawnWorldstream(args, { env, cwd: dir }).pipe(Effect.flatMap((ws) => ws.exited(120_000))),
      );
    const publish = (profile: string) =>
      command([
        "publish-ready",
        "--bus",
        "kinesis",
        "--engine-run-root",
        WORLD,
        "--platform-run-id",
        "platform_20260301T000009Z",
        "--profile",
        profile,
      ]);

    const refused = yield* publish(profileFor("edge"));
    assert.equal(refused.code, 1, `${refused.stdout}\n${tail(refused.stderr)}`);
    assert.equal(refused.result?.reason, "CONTROL_BUS_STREAM_MISSING", refused.stdout);
    assert.match(String(refused.result?.message), /no-such-stream/);
    assert.ok(!existsSync(join(runsRoot, "fraud-platform")), "no run facts written");

    // backend: bootstrap waits its timeout (5 s) for the stream, then fails with the stream's code.
    const started = performance.now();
    const backend = yield* command(["run", "--profile", profileFor("backend")]);
    assert.equal(backend.code, 1, `${backend.stdout}\n${tail(backend.stderr)}`);
    assert.equal(backend.result?.reason, "CONTROL_BUS_STREAM_MISSING", backend.stdout);
    assert.match(String(backend.result?.message), /Kinesis stream no-such-stream at http/);
    assert.ok(
      logLines(backend.stderr, "waiting for dependencies").some((l) =>
        (l.annotations as Record<string, unknown> | undefined)?.down === "control_bus"
      ),
      `it waited for the stream before giving up: ${tail(backend.stderr)}`,
    );
    assert.ok(performance.now() - started >= 5000, "not before its timeout");

    // edge: serves at once, degraded, and takes the stream up when an operator makes it.
    yield* Effect.scoped(Effect.gen(function* () {
      const port = freePort();
      const ws = yield* spawnWorldstream(
        ["run", "--profile", profileFor("edge"), "--admin-port", String(port)],
        { env, cwd: dir },
      );
      const readyz = (status: string) =>
        Effect.promise(async () => {
          try {
            const res = await fetch(`http://127.0.0.1:${port}/readyz`);
            const body = await res.json() as ReadyzBody;
            return body.status === status ? { code: res.status, body } : undefined;
          } catch {
            return undefined;
          }
        });
      const degraded = yield* waitFor("readyz degraded", readyz("degraded"), {
        timeoutMs: 60_000,
        process: ws,
      });
      assert.equal(degraded.code, 200);
      const bus = degraded.body.dependencies.find((d) => d.name === "control_bus");
      assert.equal(bus?.ok, false);
      assert.equal(bus?.reason, "CONTROL_BUS_STREAM_MISSING");
      assert.match(bus?.detail ?? "", /no-such-stream/);

      yield* Effect.promise(() => createStream(k, stream, 1));
      const ready = yield* waitFor("readyz ready", readyz("ready"), {
        timeoutMs: 30_000,
        process: ws,
      });
      assert.equal(ready.body.dependencies.find((d) => d.name === "control_bus")?.ok, true);
      const published = yield* publish(profileFor("edge"));
      assert.equal(published.code, 0, published.stdout);
      yield* waitFor(
        "the READY published on the new stream is streamed",
        gateCounts(ig, "platform_20260301T000009Z").pipe(
          Effect.map((n) => n.admitted >= WORLD_EVENTS ? n : undefined),
        ),
        { timeoutMs: 120_000, process: ws },
      );
      const stopped = yield* ws.kill("SIGTERM");
      assert.equal(stopped.code, 0, tail(stopped.stderr));
    }));
  }),
);

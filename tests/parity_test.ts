import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { loadProfile, selectOutputIds } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Postgres } from "../stores/postgres.ts";
import { SERVER_URL, serverDatabase } from "../stores/postgres_testing.ts";
import {
  copyDb,
  fileTempDir,
  freePort,
  gateCounts,
  makeWorld,
  pgliteTemplate,
  processEnv,
  REPO,
  scopedTempDir,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";
import { type RunningS3rver, S3RVER_ENV, startS3rver, uploadTree } from "./s3rver.ts";
import { createStream, readRecords, startKinesalite } from "./kinesalite.ts";

// The shipped profiles/local_parity.yaml end to end, through the real commands, against the
// stand-ins of the platform's services: kinesalite (the Kinesis control bus), s3rver (the object
// store: the world and the run facts), the Postgres server of DATABASE_URL (a fresh database per
// test; skipped without it) and the reference gate. Nothing in the profile is edited: every
// endpoint comes from the environment, as a deployment gives it.

const SHIPPED = join(REPO, "profiles", "local_parity.yaml");
const BUCKET = "fraud-platform";
const skip = SERVER_URL === undefined;
const SKIP_NOTE = skip ? " (skipped: DATABASE_URL is not set)" : "";

const TMP = await fileTempDir("parity_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = skip ? [undefined, {} as Record<string, number>] : await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 300),
]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test({
    name: `${name}${SKIP_NOTE}`,
    ignore: skip,
    fn: () => Effect.runPromise(Effect.scoped(body)),
  });
}

/** The servers of one test, the world uploaded to `s3://fraud-platform/<worldPrefix>`. */
function parity(name: string, worldPrefix: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const s3 = yield* startS3rver(join(dir, "s3"), [BUCKET]);
    yield* uploadTree(s3.s3, WORLD, BUCKET, worldPrefix);
    const kinesis = yield* startKinesalite();
    const stream = `fp-control-${name}`;
    yield* Effect.promise(() => createStream(kinesis, stream, 2));
    const databaseUrl = yield* serverDatabase;
    const ig = yield* startIg({ db: copyDb(TEMPLATE!, join(dir, "ig")) });
    // What a deployment of local_parity sets: the stand-ins' endpoints, credentials they accept
    // (s3rver checks S3RVER/S3RVER; kinesalite takes any), the gate, Postgres, a receipt key.
    const vars: Record<string, string> = {
      ...S3RVER_ENV,
      OBJECT_STORE_ENDPOINT: s3.endpoint,
      CONTROL_BUS_STREAM: stream,
      CONTROL_BUS_ENDPOINT_URL: kinesis.endpoint,
      CONTROL_BUS_REGION: S3RVER_ENV.AWS_REGION,
      IG_INGEST_URL: ig.url,
      DATABASE_URL: databaseUrl,
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_RECEIPT_HMAC_KEY: "parity-test-hmac-key-0123456789abcdef",
      // local_parity serves the admin API only with an operator token.
      WORLDSTREAM_ADMIN_TOKEN: "parity-test-admin-token-0123456789",
      WSP_STREAM_SPEEDUP: "0",
    };
    const profile = yield* loadProfile(SHIPPED, vars);
    const selected = selectOutputIds(profile, vars);
    const events = [...selected.traffic, ...selected.context].reduce((n, id) => n + ROWS[id], 0);
    return {
      dir,
      s3,
      kinesis,
      stream,
      ig,
      vars,
      events,
      databaseUrl,
      world: `s3://${BUCKET}/${worldPrefix}`,
      runsRoot: vars.WORLDSTREAM_RUNS_ROOT,
    };
  });
}

/** `main.ts <args> --profile profiles/local_parity.yaml` to its exit. */
function command(args: ReadonlyArray<string>, site: { dir: string; vars: Record<string, string> }) {
  return Effect.scoped(
    spawnWorldstream([...args, "--profile", SHIPPED], {
      env: processEnv(site.vars),
      cwd: site.dir,
    }).pipe(Effect.flatMap((ws) => ws.exited(180_000))),
  );
}

/** The READY ledger's latest decision per message (its summary file in the runs root). */
function ledger(runsRoot: string) {
  const latest = new Map<string, { latest: { status: string; reason: string | null } }>();
  const file = join(runsRoot, "ready_ledger.ndjson");
  if (!existsSync(file)) return latest;
  for (const line of Deno.readTextFileSync(file).split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line);
    if (typeof entry.message_id === "string") latest.set(entry.message_id, entry);
  }
  return latest;
}

/** Keys under `prefix` in the bucket. */
function keys(s3: RunningS3rver, prefix: string) {
  return s3.s3.list(BUCKET, prefix).pipe(Effect.map((all) => all.map((o) => o.key)));
}

/** Starts `run` serving the bus (admin port for readiness) and waits until it answers /readyz. */
function serve(site: { dir: string; vars: Record<string, string> }) {
  return Effect.gen(function* () {
    const port = freePort();
    const ws = yield* spawnWorldstream(
      ["run", "--profile", SHIPPED, "--admin-port", String(port)],
      { env: processEnv(site.vars), cwd: site.dir },
    );
    yield* waitFor(
      "run answers /readyz",
      Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          async (r) => (await r.body?.cancel(), r.status === 200 ? true : undefined),
          () => undefined,
        )
      ),
      { timeoutMs: 60_000, process: ws },
    );
    return ws;
  });
}

function publish(
  site: { dir: string; vars: Record<string, string>; world: string },
  platformRunId: string,
  extra: ReadonlyArray<string> = [],
) {
  return command([
    "publish-ready",
    "--bus",
    "kinesis",
    "--engine-run-root",
    site.world,
    "--platform-run-id",
    platformRunId,
    ...extra,
  ], site);
}

test(
  "local_parity end to end: a READY put on kinesalite as the platform puts it is streamed from an S3 world to STREAMED; a restart does not stream it again",
  Effect.gen(function* () {
    const site = yield* parity("e2e", "worlds/run1");

    // The platform's Scenario Runner: run facts into the object store, then READY on Kinesis.
    const a = yield* publish(site, "platform_20260401T000001Z");
    assert.equal(a.code, 0, `${a.stdout}\n${tail(a.stderr)}`);
    const published = a.result as Record<string, string>;
    assert.equal(published.bus, "kinesis");
    assert.equal(published.stream, site.stream);
    // The facts are in S3 under the object store root (s3://fraud-platform), none locally.
    assert.deepEqual(yield* keys(site.s3, published.facts_view_ref), [published.facts_view_ref]);
    assert.ok(!existsSync(join(site.runsRoot, "fraud-platform")), "no facts in the runs root");
    // The record as the platform's KinesisControlBus puts it: Data the envelope JSON,
    // PartitionKey the envelope's partition_key (the platform run id).
    const records = yield* Effect.promise(() => readRecords(site.kinesis, site.stream));
    assert.equal(records.length, 1);
    const envelope = JSON.parse(records[0].data);
    assert.equal(envelope.message_id, published.message_id);
    assert.equal(envelope.partition_key, "platform_20260401T000001Z");
    assert.equal(records[0].partitionKey, envelope.partition_key);
    assert.equal(records[0].shardId, published.shard_id);

    // run serves the stream: the READY is streamed from the S3 world into the gate.
    yield* Effect.scoped(Effect.gen(function* () {
      const ws = yield* serve(site);
      yield* waitFor(
        "the READY is STREAMED",
        Effect.sync(() => {
          const entry = ledger(site.runsRoot).get(published.message_id);
          return entry?.latest.status === "STREAMED" ? true : undefined;
        }),
        { timeoutMs: 180_000, process: ws },
      );
      const stopped = yield* ws.kill("SIGTERM");
      assert.equal(stopped.code, 0, tail(stopped.stderr));
    }));
    const counts = yield* gateCounts(site.ig, "platform_20260401T000001Z");
    assert.deepEqual(counts, { admitted: site.events, duplicate: 0, quarantined: 0 });
    // The views were built from S3 and published back beside the world.
    const views = yield* keys(site.s3, "worlds/run1/stream_view/");
    assert.ok(views.some((k) => k.endsWith("/_stream_sort_receipt.json")), views.join("\n"));
    const first = ledger(site.runsRoot);

    // A restart: a READY whose facts are not in the object store is FAILED naming them, the next
    // one is streamed, and the first is not handled again.
    yield* Effect.scoped(Effect.gen(function* () {
      const ws = yield* serve(site);
      const b = yield* publish(site, "platform_20260401T000002Z", [
        "--object-store-root",
        `s3://${BUCKET}/elsewhere`,
      ]);
      assert.equal(b.code, 0, b.stdout);
      const c = yield* publish(site, "platform_20260401T000003Z");
      assert.equal(c.code, 0, c.stdout);
      const settled = (id: unknown) =>
        Effect.sync(() => {
          const entry = ledger(site.runsRoot).get(String(id));
          return entry !== undefined && entry.latest.status !== "DEFERRED_DOWNSTREAM_NOT_READY"
            ? entry.latest
            : undefined;
        });
      const bSettled = yield* waitFor("READY B is settled", settled(b.result?.message_id), {
        timeoutMs: 120_000,
        process: ws,
      });
      assert.equal(bSettled.status, "FAILED");
      assert.equal(bSettled.reason, "FACTS_VIEW_MISSING");
      // Its audit event (drained to Postgres) names the object it looked for.
      const rejected = yield* Effect.gen(function* () {
        const pg = yield* Postgres;
        return yield* waitFor(
          "the rejection reaches Postgres's audit events",
          pg.query<{ message: string }>(
            `select detail->>'message' as message from ws_audit_events
             where kind = 'RUN_READY_REJECTED' and detail->>'reason' = 'FACTS_VIEW_MISSING'`,
          ).pipe(Effect.map((rows) => rows[0])),
          { timeoutMs: 60_000, process: ws },
        );
      }).pipe(Effect.provide(Postgres.layerServer(site.databaseUrl)));
      assert.match(
        String(rejected.message),
        new RegExp(
          `Run facts view s3://${BUCKET}/fraud-platform/platform_20260401T000002Z/.* does not exist`,
        ),
      );
      const cSettled = yield* waitFor("READY C is settled", settled(c.result?.message_id), {
        timeoutMs: 180_000,
        process: ws,
      });
      assert.equal(cSettled.status, "STREAMED");
      const stopped = yield* ws.kill("SIGTERM");
      assert.equal(stopped.code, 0, tail(stopped.stderr));
    }));
    assert.deepEqual(
      ledger(site.runsRoot).get(published.message_id),
      first.get(published.message_id),
    );
    assert.deepEqual(yield* gateCounts(site.ig, "platform_20260401T000001Z"), counts);
    assert.deepEqual(yield* gateCounts(site.ig, "platform_20260401T000003Z"), {
      admitted: site.events,
      duplicate: 0,
      quarantined: 0,
    });
  }),
);

test(
  "publish-ready on local_parity with a missing bucket fails ORACLE_BUCKET_MISSING naming it and puts no READY on the stream",
  Effect.gen(function* () {
    const site = yield* parity("nobucket", "worlds/run2");
    const exited = yield* command([
      "publish-ready",
      "--bus",
      "kinesis",
      "--engine-run-root",
      site.world,
    ], { ...site, vars: { ...site.vars, OBJECT_STORE_ROOT: "s3://no-such-bucket/platform" } });
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(exited.result?.reason, "ORACLE_BUCKET_MISSING");
    assert.match(
      String(exited.result?.message),
      /s3:\/\/no-such-bucket\/platform\/fraud-platform\//,
    );
    assert.deepEqual(yield* Effect.promise(() => readRecords(site.kinesis, site.stream)), []);
  }),
);

test(
  "deno task validate --profile profiles/local_parity.yaml passes every check against s3rver, kinesalite, a Postgres server and the reference gate",
  Effect.gen(function* () {
    const site = yield* parity("validate", "worlds/validate");
    const vars = { ...site.vars, ORACLE_ENGINE_RUN_ROOT: site.world };
    // The command the README gives an operator, run where the README runs it (the repository).
    const out = yield* Effect.promise(() =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "--quiet",
          "validate",
          "--profile",
          "profiles/local_parity.yaml",
          "--smoke-events",
          "20",
        ],
        cwd: REPO,
        env: processEnv(vars),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output()
    );
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${stdout}\n${tail(stderr, 40)}`);
    const result = JSON.parse(stdout.trim().split("\n").pop()!) as {
      status: string;
      engine_run_root: string;
      checks: Array<{ name: string; status: string; detail: string }>;
    };
    assert.equal(result.status, "PASSED");
    assert.equal(result.engine_run_root, site.world);
    assert.deepEqual(result.checks.map((c) => c.name), [
      "profile",
      "postgres",
      "ig",
      "control_bus",
      "object_store",
      "world",
      "gates",
      "smoke_stream",
      "resume",
      "producer_not_allowed",
      "gate_flag_missing",
    ]);
    for (const c of result.checks) assert.equal(c.status, "PASSED", `${c.name}: ${c.detail}`);
    const detail = (name: string) => result.checks.find((c) => c.name === name)!.detail;
    assert.match(detail("control_bus"), new RegExp(`Kinesis stream ${site.stream} answers`));
    assert.match(detail("object_store"), /s3:\/\/fraud-platform/);
  }),
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { startIg } from "../ig/server.ts";
import {
  CONTEXT,
  copyDb,
  fileTempDir,
  gateCounts,
  makeWorld,
  OUTPUTS,
  pgliteTemplate,
  processEnv,
  scopedTempDir,
  spawnWorldstream,
  tail,
  TRAFFIC,
} from "./_testing.ts";
import { S3RVER_ENV, startS3rver, uploadTree } from "./s3rver.ts";

// A world in S3 (s3rver on loopback, started by the test) goes through the real commands: `sort`
// builds its views from the object cache and publishes them back to S3 (receipt last), a second
// `sort` in another process finds them current, and `stream` reads them through the cache into the
// reference gate, which admits every event once. Each bad input ends with its reason code.

const TMP = await fileTempDir("s3_world_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 2000),
]);
const BUCKET = "worlds";

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

/** s3rver holding the world at s3://worlds/run1, and the variables that point worldstream at it. */
function site(name: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const server = yield* startS3rver(join(dir, "s3"), [BUCKET, "empty"]);
    yield* uploadTree(server.s3, WORLD, BUCKET, "run1");
    const vars: Record<string, string> = {
      ...S3RVER_ENV,
      OBJECT_STORE_ENDPOINT: server.endpoint,
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_PGLITE_DIR: copyDb(TEMPLATE, join(dir, "pg")),
      WORLDSTREAM_DB_BACKEND: "pglite",
    };
    return { dir, server, vars };
  });
}

function command(args: ReadonlyArray<string>, vars: Record<string, string>, cwd: string) {
  return Effect.scoped(
    spawnWorldstream(args, { env: processEnv(vars), cwd }).pipe(
      Effect.flatMap((ws) => ws.exited(180_000)),
    ),
  );
}

const sortArgs = (
  root: string,
) => ["sort", "--engine-run-root", root, "--output-ids", OUTPUTS.join(",")];

test(
  "sort builds the views of an S3 world, publishes them to S3 with their receipts, and a second sort finds them current",
  Effect.gen(function* () {
    const { dir, server, vars } = yield* site("sort");
    const first = yield* command(sortArgs(`s3://${BUCKET}/run1`), vars, dir);
    assert.equal(first.code, 0, `${first.stdout}\n${tail(first.stderr)}`);
    const built = first.result as { status: string; outputs: Array<Record<string, unknown>> };
    assert.deepEqual(
      built.outputs.map((o) => [o.output_id, o.status, o.row_count]),
      OUTPUTS.map((id) => [id, "BUILT", ROWS[id]]),
    );
    const keys = (yield* server.s3.list(BUCKET, "run1/stream_view/ts_utc/")).map((o) => o.key);
    for (const id of OUTPUTS) {
      for (
        const name of [
          "part-00000.parquet",
          "_stream_view_manifest.json",
          "_stream_sort_receipt.json",
        ]
      ) {
        assert.ok(
          keys.includes(`run1/stream_view/ts_utc/output_id=${id}/${name}`),
          `${id}/${name} not in S3: ${keys.join(", ")}`,
        );
      }
    }
    assert.ok(!keys.some((k) => k.includes("_staging")), `staging published: ${keys.join(", ")}`);
    const receipt = JSON.parse(new TextDecoder().decode(
      (yield* server.s3.getRange(
        BUCKET,
        `run1/stream_view/ts_utc/output_id=${TRAFFIC}/_stream_sort_receipt.json`,
        { start: 0, end: -1, etag: "*" },
      )).bytes,
    ));
    assert.equal(receipt.engine_run_root, `s3://${BUCKET}/run1`);
    assert.equal(receipt.stream_view_root, `s3://${BUCKET}/run1/stream_view/ts_utc`);

    // Another process, the cache warm: the views in S3 are current (sources unchanged).
    const second = yield* command(sortArgs(`s3://${BUCKET}/run1`), vars, dir);
    assert.equal(second.code, 0, `${second.stdout}\n${tail(second.stderr)}`);
    assert.deepEqual(
      (second.result as { outputs: Array<Record<string, unknown>> }).outputs.map((o) => o.status),
      ["SKIPPED", "SKIPPED"],
    );
    // A cold cache reads the same objects again and still finds the views current.
    const cold = yield* command(sortArgs(`s3://${BUCKET}/run1`), {
      ...vars,
      WORLDSTREAM_OBJECT_CACHE_DIR: join(dir, "cold_cache"),
    }, dir);
    assert.equal(cold.code, 0, `${cold.stdout}\n${tail(cold.stderr)}`);
    assert.deepEqual(
      (cold.result as { outputs: Array<Record<string, unknown>> }).outputs.map((o) => o.status),
      ["SKIPPED", "SKIPPED"],
    );
  }),
);

test(
  "stream of an S3 world reads its views through the cache and the reference gate admits every event once",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("stream");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const platformRunId = "platform_20260101T000000Z";
    const exited = yield* command(
      [
        "stream",
        "--engine-run-root",
        `s3://${BUCKET}/run1`,
        "--output-ids",
        OUTPUTS.join(","),
        "--platform-run-id",
        platformRunId,
        "--speedup",
        "0",
        "--ig-url",
        ig.url,
      ],
      vars,
      dir,
    );
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const result = exited.result as { status: string; emitted: number; engine_run_root: string };
    assert.equal(result.status, "STREAMED");
    assert.equal(result.engine_run_root, `s3://${BUCKET}/run1`);
    const expected = ROWS[TRAFFIC] + ROWS[CONTEXT];
    assert.equal(result.emitted, expected);
    const counts = yield* gateCounts(ig, platformRunId);
    assert.deepEqual(counts, { admitted: expected, duplicate: 0, quarantined: 0 });
  }),
);

/** Runs `sort` and returns its exit code and result line. */
function sortFails(
  root: string,
  vars: Record<string, string>,
  dir: string,
) {
  return command(sortArgs(root), vars, dir).pipe(Effect.map((e) => {
    assert.notEqual(e.code, 0, e.stdout);
    return e.result as { status: string; reason: string; message: string };
  }));
}

test(
  "bad S3 roots end with their reason codes and a message naming the bucket or key",
  Effect.gen(function* () {
    const { dir, server, vars } = yield* site("bad");
    const wrongBucket = yield* sortFails("s3://no-such-bucket/run1", vars, dir);
    assert.equal(wrongBucket.reason, "ENGINE_ROOT_MISSING");
    assert.match(wrongBucket.message, /s3:\/\/no-such-bucket.*bucket does not exist/);

    const wrongPrefix = yield* sortFails(`s3://${BUCKET}/run2`, vars, dir);
    assert.equal(wrongPrefix.reason, "ENGINE_ROOT_MISSING");
    assert.match(wrongPrefix.message, /s3:\/\/worlds\/run2 holds no objects/);

    // A world whose receipt object is missing.
    yield* uploadTree(server.s3, WORLD, BUCKET, "noreceipt");
    yield* server.s3.remove(BUCKET, ["noreceipt/run_receipt.json"]);
    const noReceipt = yield* sortFails(`s3://${BUCKET}/noreceipt`, vars, dir);
    assert.equal(noReceipt.reason, "RUN_RECEIPT_UNREADABLE");
    assert.match(noReceipt.message, /s3:\/\/worlds\/noreceipt\/run_receipt\.json/);

    // A part object missing: the gate's bundle still lists it.
    const parts = (yield* server.s3.list(BUCKET, "run1/data/")).filter((o) =>
      o.key.includes(TRAFFIC) && o.key.endsWith(".parquet")
    );
    yield* uploadTree(server.s3, WORLD, BUCKET, "nopart");
    yield* server.s3.remove(BUCKET, [parts[0].key.replace(/^run1\//, "nopart/")]);
    const noPart = yield* sortFails(`s3://${BUCKET}/nopart`, vars, dir);
    assert.equal(noPart.reason, "OUTPUT_PARTS_MISMATCH");

    const denied = yield* sortFails(`s3://${BUCKET}/run1`, {
      ...vars,
      AWS_ACCESS_KEY_ID: "INTRUDER",
    }, dir);
    assert.equal(denied.reason, "ORACLE_ACCESS_DENIED");
    assert.match(denied.message, /s3:\/\/worlds\/run1/);

    const scheme = yield* sortFails("gs://worlds/run1", vars, dir);
    assert.equal(scheme.reason, "ORACLE_STORE_UNSUPPORTED");
    assert.match(scheme.message, /gs:\/\/worlds\/run1/);
    const profileScheme = yield* sortFails(`s3://${BUCKET}/run1`, {
      ...vars,
      OBJECT_STORE_ROOT: "gs://fraud-platform",
    }, dir);
    assert.equal(profileScheme.reason, "ORACLE_STORE_UNSUPPORTED");

    const viewBucket = yield* sortFails(`s3://${BUCKET}/run1`, {
      ...vars,
      ORACLE_STREAM_VIEW_ROOT: "s3://no-view-bucket/views",
    }, dir);
    assert.equal(viewBucket.reason, "ORACLE_BUCKET_MISSING");
    assert.match(viewBucket.message, /s3:\/\/no-view-bucket\/views/);

    const small = yield* sortFails(`s3://${BUCKET}/run1`, {
      ...vars,
      WORLDSTREAM_OBJECT_CACHE_BYTES: "1000",
    }, dir);
    assert.equal(small.reason, "ORACLE_CACHE_TOO_SMALL");

    // Nothing of a view was published by any of these.
    const views = yield* server.s3.list(BUCKET, "run1/stream_view/");
    assert.deepEqual(views.map((o) => o.key), []);
  }),
);

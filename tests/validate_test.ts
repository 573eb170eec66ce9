import assert from "node:assert/strict";
import { cpSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { startIg } from "../ig/server.ts";
import {
  copyDb,
  freePort,
  gateCounts,
  processEnv,
  processSite,
  scopedTempDir,
  spawnWorldstream,
  tail,
} from "./_testing.ts";
import { SERVER_URL, serverDatabase } from "../stores/postgres_testing.ts";
import { S3RVER_ENV, startS3rver, uploadTree } from "./s3rver.ts";
import { createStream, KINESIS_ENV, kinesisProfile, startKinesalite } from "./kinesalite.ts";

// `validate` as an operator runs it (`main.ts validate` in a subprocess) on the local profile,
// against the reference gate served by this test: every check passes on a world from gen-world,
// and the command fails naming the check and its reason when the gate is down or when the world
// (a copy) lacks a gate flag.

const { tmp: TMP, world: WORLD, template: TEMPLATE } = await processSite("validate_test_", 600);
// A pristine copy for S3: the local runs build stream views inside WORLD, from local parts.
const S3_WORLD = join(TMP, "world_s3");
cpSync(WORLD, S3_WORLD, { recursive: true });
const SMOKE = 20;
const CHECKS = [
  "profile",
  "postgres",
  "ig",
  "control_bus",
  "world",
  "gates",
  "smoke_stream",
  "resume",
  "producer_not_allowed",
  "gate_flag_missing",
];

interface Result {
  status: string;
  reason: string | null;
  platform_run_id: string;
  checks: Array<{
    name: string;
    status: string;
    reason?: string;
    detail: string;
    facts?: Record<string, unknown>;
  }>;
}

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

/** A runs root, PGlite folder and control bus of the test's own. */
function site(name: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const vars = {
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_PGLITE_DIR: copyDb(TEMPLATE, join(dir, "pg")),
      WORLDSTREAM_DB_BACKEND: "pglite",
      CONTROL_BUS_ROOT: join(dir, "bus"),
    };
    return { dir, vars };
  });
}

function validate(args: ReadonlyArray<string>, vars: Record<string, string>, cwd: string) {
  return Effect.scoped(
    spawnWorldstream(["validate", "--smoke-events", String(SMOKE), ...args], {
      env: processEnv(vars),
      cwd,
    }).pipe(Effect.flatMap((ws) => ws.exited(240_000))),
  );
}

const check = (result: Result, name: string) => {
  const found = result.checks.find((c) => c.name === name);
  assert.ok(found, `a ${name} check in ${JSON.stringify(result.checks.map((c) => c.name))}`);
  return found;
};

/** Every `_passed.flag` under `dir`, relative to it. */
function flags(dir: string, rel = ""): Array<string> {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? flags(dir, join(rel, e.name))
      : e.name === "_passed.flag"
      ? [join(rel, e.name)]
      : []
  );
}

test(
  "validate passes every check on the local profile with a gen-world world and a live gate, and keeps every gate flag of the world",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("passes");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const before = flags(WORLD);
    const exited = yield* validate(["--engine-run-root", WORLD, "--ig-url", ig.url], vars, dir);
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
    const result = exited.result as unknown as Result;
    assert.equal(result.status, "PASSED");
    assert.equal(result.reason, null);
    assert.deepEqual(result.checks.map((c) => c.name), CHECKS);
    for (const c of result.checks) assert.equal(c.status, "PASSED", `${c.name}: ${c.detail}`);
    // One report line per check on stderr, for people.
    for (const name of CHECKS) {
      assert.match(exited.stderr, new RegExp(`^PASSED +${name} `, "m"), name);
    }
    // What the gate holds agrees: both bounded runs admitted, nothing twice.
    const smoke = check(result, "smoke_stream").facts as { admitted: number; emitted: number };
    const resume = check(result, "resume").facts as {
      admitted: number;
      duplicate: number;
      resumed_from_seq: Record<string, number | null>;
    };
    assert.ok(smoke.emitted > 0 && smoke.emitted <= 4 * SMOKE, `${smoke.emitted} emitted`);
    for (const seq of Object.values(resume.resumed_from_seq)) assert.equal(seq, SMOKE - 1);
    const gate = yield* gateCounts(ig, result.platform_run_id);
    assert.equal(gate.admitted, smoke.admitted + resume.admitted);
    assert.equal(gate.duplicate, 0);
    // The refused producer's run sent nothing, and the world kept every gate flag.
    const all = yield* Effect.promise(() =>
      fetch(`${ig.url}/v1/ops/stats`).then((r) => r.json() as Promise<Record<string, unknown>>)
    );
    assert.deepEqual(Object.keys(all), [result.platform_run_id], "one platform run at the gate");
    assert.deepEqual(flags(WORLD), before);
  }),
);

test(
  "validate fails when the gate is down: the ig check FAILED with IG_UNREACHABLE, the streams SKIPPED",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("gate-down");
    const down = `http://127.0.0.1:${freePort()}`;
    const exited = yield* validate(["--engine-run-root", WORLD, "--ig-url", down], vars, dir);
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
    const result = exited.result as unknown as Result;
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "VALIDATION_FAILED");
    const ig = check(result, "ig");
    assert.equal(ig.status, "FAILED");
    assert.equal(ig.reason, "IG_UNREACHABLE");
    assert.match(ig.detail, new RegExp(down.replace(/[.:/]/g, "\\$&")));
    assert.match(exited.stderr, /^FAILED +ig +IG_UNREACHABLE: The gate at http:\/\/127\.0\.0\.1/m);
    for (const name of ["smoke_stream", "resume"]) {
      assert.equal(check(result, name).status, "SKIPPED");
      assert.equal(check(result, name).reason, "VALIDATE_SKIPPED");
      assert.match(check(result, name).detail, /ig/);
    }
    // The checks that need no gate still ran and passed.
    for (const name of ["world", "gates", "producer_not_allowed", "gate_flag_missing"]) {
      assert.equal(check(result, name).status, "PASSED", name);
    }
  }),
);

test(
  "validate fails closed on a world whose gate flag is missing: gates FAILED with GATE_PASS_MISSING naming the flag",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("flag-missing");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const copy = join(dir, "world");
    cpSync(WORLD, copy, { recursive: true });
    const [flag] = flags(copy).filter((f) => f.includes("layer3/6B"));
    assert.ok(flag, "the world has the 6B gate's flag");
    Deno.removeSync(join(copy, flag));
    const exited = yield* validate(["--engine-run-root", copy, "--ig-url", ig.url], vars, dir);
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
    const result = exited.result as unknown as Result;
    assert.equal(result.status, "FAILED");
    const gates = check(result, "gates");
    assert.equal(gates.status, "FAILED");
    assert.equal(gates.reason, "GATE_PASS_MISSING");
    assert.ok(gates.detail.includes(flag), gates.detail);
    assert.match(exited.stderr, /^FAILED +gates +GATE_PASS_MISSING: /m);
    for (const name of ["smoke_stream", "resume", "producer_not_allowed", "gate_flag_missing"]) {
      assert.equal(check(result, name).status, "SKIPPED", name);
    }
    // Nothing reached the gate.
    const all = yield* Effect.promise(() =>
      fetch(`${ig.url}/v1/ops/stats`).then((r) => r.json() as Promise<Record<string, unknown>>)
    );
    assert.deepEqual(all, {});
  }),
);

test(
  "validate fails when the profile's Postgres server is down: postgres FAILED with PG_UNAVAILABLE, the runs SKIPPED",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("pg-down");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const port = freePort();
    const exited = yield* validate(["--engine-run-root", WORLD, "--ig-url", ig.url], {
      ...vars,
      WORLDSTREAM_DB_BACKEND: "server",
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/worldstream`,
    }, dir);
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
    const result = exited.result as unknown as Result;
    assert.equal(result.reason, "VALIDATION_FAILED");
    const pg = check(result, "postgres");
    assert.equal(pg.status, "FAILED");
    assert.equal(pg.reason, "PG_UNAVAILABLE");
    assert.match(pg.detail, new RegExp(`127\\.0\\.0\\.1:${port}`));
    for (const name of ["smoke_stream", "resume", "producer_not_allowed"]) {
      assert.equal(check(result, name).status, "SKIPPED", name);
      assert.match(check(result, name).detail, /postgres/, name);
    }
    assert.equal(check(result, "gate_flag_missing").status, "PASSED");
    assert.deepEqual(yield* gateCounts(ig, result.platform_run_id), {
      admitted: 0,
      duplicate: 0,
      quarantined: 0,
    });
  }),
);

test(
  "validate passes on a world in S3 (s3rver) with the object store root answering, and fails ORACLE_BUCKET_MISSING naming a root whose bucket is missing",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("s3");
    const server = yield* startS3rver(join(dir, "s3"), ["fraud-platform"]);
    yield* uploadTree(server.s3, S3_WORLD, "fraud-platform", "worlds/run1");
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const s3vars = { ...vars, ...S3RVER_ENV, OBJECT_STORE_ENDPOINT: server.endpoint };
    const args = ["--engine-run-root", "s3://fraud-platform/worlds/run1", "--ig-url", ig.url];
    const exited = yield* validate(args, {
      ...s3vars,
      OBJECT_STORE_ROOT: "s3://fraud-platform",
    }, dir);
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
    const result = exited.result as unknown as Result;
    assert.deepEqual(
      result.checks.filter((c) => c.status !== "PASSED").map((c) => `${c.name}: ${c.detail}`),
      [],
    );
    assert.match(check(result, "object_store").detail, /s3:\/\/fraud-platform/);
    assert.equal(check(result, "world").detail.split(":")[0], "s3");
    const smoke = check(result, "smoke_stream").facts as { admitted: number };
    const resume = check(result, "resume").facts as { admitted: number };
    const gate = yield* gateCounts(ig, result.platform_run_id);
    assert.equal(gate.admitted, smoke.admitted + resume.admitted);

    const missing = yield* validate(
      args,
      { ...s3vars, OBJECT_STORE_ROOT: "s3://no-such-bucket" },
      dir,
    );
    assert.equal(missing.code, 1, `${missing.stdout}\n${tail(missing.stderr, 30)}`);
    const store = check(missing.result as unknown as Result, "object_store");
    assert.equal(store.status, "FAILED");
    assert.equal(store.reason, "ORACLE_BUCKET_MISSING");
    assert.match(store.detail, /no-such-bucket/);
  }),
);

Deno.test({
  name:
    "validate passes on the server backend (a fresh database on DATABASE_URL's server; skipped without it)",
  ignore: SERVER_URL === undefined,
  fn: () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const { dir, vars } = yield* site("server");
      const url = yield* serverDatabase;
      const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
      const exited = yield* validate(["--engine-run-root", WORLD, "--ig-url", ig.url], {
        ...vars,
        WORLDSTREAM_DB_BACKEND: "server",
        DATABASE_URL: url,
      }, dir);
      assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr, 30)}`);
      const result = exited.result as unknown as Result;
      assert.deepEqual(result.checks.map((c) => c.name), CHECKS);
      for (const c of result.checks) assert.equal(c.status, "PASSED", `${c.name}: ${c.detail}`);
      assert.match(check(result, "postgres").detail, /127\.0\.0\.1:\d+/);
    }))),
});

test(
  "validate checks a Kinesis control bus: a stream that answers passes, a missing one fails CONTROL_BUS_STREAM_MISSING naming it",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("kinesis");
    const kinesis = yield* startKinesalite();
    yield* Effect.promise(() => createStream(kinesis, "ws-validate", 1));
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const profileFor = (stream: string) =>
      kinesisProfile(join(dir, `profile-${stream}.yaml`), {
        endpoint: kinesis.endpoint,
        stream,
        runsRoot: vars.WORLDSTREAM_RUNS_ROOT,
        pgliteDir: vars.WORLDSTREAM_PGLITE_DIR,
        igUrl: ig.url,
      });
    const env = { ...vars, ...KINESIS_ENV };
    const run = (stream: string) =>
      validate(["--profile", profileFor(stream), "--engine-run-root", WORLD], env, dir);

    const answers = yield* run("ws-validate");
    const ok = check(answers.result as unknown as Result, "control_bus");
    assert.equal(ok.status, "PASSED", `${ok.detail}\n${tail(answers.stderr, 30)}`);
    assert.match(ok.detail, /Kinesis stream ws-validate answers/);

    const missing = yield* run("ws-nowhere");
    assert.equal(missing.code, 1, `${missing.stdout}\n${tail(missing.stderr, 30)}`);
    const bus = check(missing.result as unknown as Result, "control_bus");
    assert.equal(bus.status, "FAILED");
    assert.equal(bus.reason, "CONTROL_BUS_STREAM_MISSING");
    assert.match(bus.detail, /ws-nowhere/);
  }),
);

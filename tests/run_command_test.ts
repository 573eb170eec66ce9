import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { Effect } from "effect";
import { publishReady } from "../actions/publish_ready.ts";
import { loadProfile, selectOutputIds } from "../core/profile.ts";
import {
  effectTest,
  fileTempDir,
  freePort,
  gateCounts,
  makeWorld,
  pgliteSite,
  pgliteTemplate,
  processEnv,
  runCommand,
  shippedProfile,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";

// `run` is the service, tried as a user runs it (`main.ts run` in a subprocess): only the local
// profile with no world given makes the demo world; `--engine-run-root` names an existing world
// to publish a READY for and is never generated into; any other profile only serves the bus, and
// a SIGINT or SIGTERM ends it with exit 0 after draining, the next start resuming the run.

const TMP = await fileTempDir("run_command_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 3000),
]);
// What a run streams of it: the outputs the profiles select (traffic and context), not all six.
const SELECTED = selectOutputIds(await Effect.runPromise(loadProfile("local")));
const WORLD_EVENTS = [...SELECTED.traffic, ...SELECTED.context].reduce((n, id) => n + ROWS[id], 0);
const TOPIC = "fp.bus.control.v1";

/** A runs root of its own for one test, with a gate in this process. */
function site(name: string) {
  return pgliteSite(TMP, name, { template: TEMPLATE, bus: true, gate: true });
}

function busMessages(busRoot: string): string[] {
  const topic = join(busRoot, TOPIC);
  return existsSync(topic) ? readdirSync(topic) : [];
}

function runOnce(args: ReadonlyArray<string>, vars: Record<string, string>, cwd: string) {
  return runCommand(["run", ...args], { dir: cwd, vars });
}

effectTest(
  "run --once on the local profile with no world makes the demo world under the runs root, publishes its READY and streams it",
  Effect.gen(function* () {
    const { dir, vars, ig } = yield* site("demo");
    const exited = yield* runOnce(["--once", "--speedup", "0", "--ig-url", ig.url], vars, dir);
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const result = exited.result as { status: string; emitted: number; platform_run_id: string };
    assert.equal(result.status, "STREAMED");
    assert.ok(existsSync(join(vars.WORLDSTREAM_RUNS_ROOT, "demo_world", "run_receipt.json")));
    assert.equal(busMessages(vars.CONTROL_BUS_ROOT).length, 1, "one READY, for the demo world");
    assert.equal((yield* gateCounts(ig, result.platform_run_id)).admitted, result.emitted);
  }),
);

effectTest(
  "run --once --engine-run-root streams an existing world made by gen-world, and generates nothing",
  Effect.gen(function* () {
    const { dir, vars, ig } = yield* site("given");
    const receipt = Deno.readTextFileSync(join(WORLD, "run_receipt.json"));
    const exited = yield* runOnce(
      ["--once", "--engine-run-root", WORLD, "--speedup", "0", "--ig-url", ig.url],
      vars,
      dir,
    );
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const result = exited.result as { status: string; emitted: number; engine_run_root: string };
    assert.equal(result.status, "STREAMED");
    assert.equal(result.engine_run_root, resolve(WORLD));
    assert.equal(result.emitted, WORLD_EVENTS, "the whole given world's selected outputs");
    assert.ok(!existsSync(join(vars.WORLDSTREAM_RUNS_ROOT, "demo_world")), "no demo world");
    assert.equal(Deno.readTextFileSync(join(WORLD, "run_receipt.json")), receipt);
    assert.equal(busMessages(vars.CONTROL_BUS_ROOT).length, 1);
  }),
);

effectTest(
  "run --engine-run-root refuses a missing folder and a folder without a world, and writes into neither",
  Effect.gen(function* () {
    const { dir, vars } = yield* site("bad-root");
    const missing = join(dir, "no-such-world");
    const empty = join(dir, "empty");
    Deno.mkdirSync(empty);
    for (
      const [root, reason] of [
        [missing, "ENGINE_ROOT_MISSING"],
        [empty, "RUN_RECEIPT_UNREADABLE"],
      ] as const
    ) {
      const exited = yield* runOnce(["--once", "--engine-run-root", root], vars, dir);
      assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr)}`);
      assert.equal(exited.result?.reason, reason, exited.stdout);
      assert.match(String(exited.result?.message), /existing world.*gen-world/);
    }
    assert.ok(!existsSync(missing), "nothing made at the missing root");
    assert.deepEqual(readdirSync(empty), [], "nothing written into the empty folder");
    assert.deepEqual(busMessages(vars.CONTROL_BUS_ROOT), [], "no READY published");
    assert.ok(!existsSync(join(vars.WORLDSTREAM_RUNS_ROOT, "demo_world")));
  }),
);

/**
 * profiles/local_parity.yaml on the file control bus instead of Kinesis, PGlite, and run facts
 * in the runs root instead of S3 (tests/parity_test.ts runs the shipped one on kinesalite,
 * s3rver and a Postgres server), refs made absolute so the copy works from a folder.
 */
function parityProfile(path: string, vars: Record<string, string>, igUrl: string) {
  const profile = shippedProfile("local_parity");
  profile.wiring.control_bus = { kind: "file", root: vars.CONTROL_BUS_ROOT, topic: TOPIC };
  profile.wiring.object_store = { root: vars.WORLDSTREAM_RUNS_ROOT };
  profile.wiring.database = { backend: "pglite", pglite_dir: vars.WORLDSTREAM_PGLITE_DIR };
  profile.wiring.ig_ingest_url = igUrl;
  Deno.writeTextFileSync(path, stringify(profile));
  return path;
}

effectTest(
  "run on another profile with no world only serves the bus: no demo world, no READY of its own; SIGINT mid-run and SIGTERM end it with exit 0 and a restart resumes",
  Effect.gen(function* () {
    const { dir, vars, ig } = yield* site("parity");
    const profilePath = parityProfile(join(dir, "parity.yaml"), vars, ig.url);
    const env = (speedup: number) =>
      processEnv({
        ...vars,
        WORLDSTREAM_RECEIPT_HMAC_KEY: "run-command-test-hmac-key-0123456789",
        // A profile other than local serves the admin API only with an operator token.
        WORLDSTREAM_ADMIN_TOKEN: "run-command-test-admin-token-0123456789",
        WSP_STREAM_SPEEDUP: String(speedup),
        // The reference gate takes batches. (In push mode a stop waits until the lanes have
        // pushed everything they buffered, one request per event: not yet within seconds.)
        WSP_COURIER_MODE: "batch",
      });
    const serve = (speedup: number) =>
      Effect.gen(function* () {
        const port = freePort();
        const ws = yield* spawnWorldstream(
          ["run", "--profile", profilePath, "--admin-port", String(port)],
          { env: env(speedup), cwd: dir, ownGroup: true },
        );
        yield* waitFor(
          "the runtime is ready",
          Effect.promise(() =>
            fetch(`http://127.0.0.1:${port}/readyz`).then(
              async (r) => (await r.text(), r.ok ? true : undefined),
              () => undefined,
            )
          ),
          { timeoutMs: 120_000, process: ws },
        );
        return ws;
      });
    const stop = (ws: { signalGroup: (s: Deno.Signal) => void }, signal: Deno.Signal) =>
      Effect.gen(function* () {
        const sentAt = performance.now();
        ws.signalGroup(signal);
        const exited = yield* (ws as unknown as { exited: (ms: number) => Effect.Effect<Exited> })
          .exited(60_000);
        return { exited, ms: performance.now() - sentAt };
      });
    type Exited = { code: number; stdout: string; stderr: string };

    const first = yield* Effect.scoped(Effect.gen(function* () {
      const ws = yield* serve(20_000);
      assert.deepEqual(busMessages(vars.CONTROL_BUS_ROOT), [], "it published no READY");
      assert.ok(!existsSync(join(vars.WORLDSTREAM_RUNS_ROOT, "demo_world")), "no demo world");
      // The platform's scenario runner publishes a READY: the service picks it up.
      const profile = yield* loadProfile(profilePath, vars);
      const ready = yield* publishReady({
        engineRunRoot: WORLD,
        profile,
        platformRunId: "platform_20260101T000009Z",
      });
      yield* waitFor(
        "the gate admits 200 events of the READY's run",
        gateCounts(ig, ready.platform_run_id).pipe(
          Effect.map((c) => c.admitted >= 200 ? c : undefined),
        ),
        { timeoutMs: 60_000, process: ws },
      );
      return { ready, ...(yield* stop(ws, "SIGINT")) };
    }));
    const why = (e: Exited) => `${e.stdout}\n${tail(e.stderr)}`;
    assert.ok(first.ms < 10_000, `SIGINT took ${Math.round(first.ms)} ms: ${why(first.exited)}`);
    assert.equal(first.exited.code, 0, why(first.exited));
    const run = first.ready.platform_run_id;
    const atStop = yield* gateCounts(ig, run);
    assert.ok(atStop.admitted < WORLD_EVENTS, "stopped mid-run");

    // The next start finds the READY not done and resumes its run where the stop left it.
    const second = yield* Effect.scoped(Effect.gen(function* () {
      const ws = yield* serve(0);
      yield* waitFor(
        "the gate admits the whole world",
        gateCounts(ig, run).pipe(Effect.map((c) => c.admitted >= WORLD_EVENTS ? c : undefined)),
        { timeoutMs: 120_000, process: ws },
      );
      return yield* stop(ws, "SIGTERM");
    }));
    assert.ok(second.ms < 10_000, `SIGTERM took ${Math.round(second.ms)} ms`);
    assert.equal(second.exited.code, 0, why(second.exited));
    const counts = yield* gateCounts(ig, run);
    assert.equal(counts.admitted, WORLD_EVENTS, "every event admitted once");
    assert.equal(counts.duplicate, 0, "the restart re-sent nothing the stop had delivered");
    assert.equal(busMessages(vars.CONTROL_BUS_ROOT).length, 1, "only the platform's READY");
  }),
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { lockHolder } from "../stores/lock_file.ts";
import { OWNER_LOCK_FILE } from "../stores/pglite_channel.ts";
import {
  copyDb,
  effectTest,
  freePort,
  pgliteSite,
  processEnv,
  processSite,
  runCommand,
  scopedTempDir,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";

// A folder another live process holds is reported at once, with the holder's pid and a code,
// through the real commands: `dead-letters list` beside a serving `run` on the same runs root
// used to wait 20 s and more in silence on the PGlite folder, and a second reference gate on
// one --db folder waited for ever (issue 12).

const { tmp: TMP, world: WORLD, template: TEMPLATE } = await processSite("lock_test_", 300);
/** "At once": a refusal takes a process start (~1–3 s on the loaded 2-core machine). */
const AT_ONCE_MS = 15_000;

/** Waits until the lock file at `path` names `pid`. */
function heldBy(path: string, pid: number, process: Parameters<typeof waitFor>[2]["process"]) {
  return waitFor(
    `${path} held by ${pid}`,
    Effect.promise(async () => (await lockHolder(path)) === pid ? true : undefined),
    { timeoutMs: 60_000, process },
  );
}

function gateStats(ig: { url: string }) {
  return Effect.promise(async () =>
    (await (await fetch(`${ig.url}/v1/ops/stats`)).json()) as Record<string, unknown>
  );
}

effectTest(
  "dead-letters list and audit-verify beside a serving run on the same runs root fail at once naming run's pid",
  Effect.gen(function* () {
    const site = yield* pgliteSite(TMP, "run-and-dead-letters", {
      template: TEMPLATE,
      bus: true,
      gate: true,
    });
    const { dir, vars, ig } = site;
    const run = yield* spawnWorldstream(
      ["run", "--engine-run-root", WORLD, "--speedup", "0", "--ig-url", ig.url],
      { env: processEnv(vars), cwd: dir },
    );
    yield* heldBy(join(vars.WORLDSTREAM_PGLITE_DIR, OWNER_LOCK_FILE), run.pid, run);
    yield* heldBy(join(vars.WORLDSTREAM_RUNS_ROOT, "wal", "lock"), run.pid, run);
    // Its runtime is up (and handles SIGTERM) once the gate has taken events from it.
    yield* waitFor(
      "run's first events at the gate",
      gateStats(ig).pipe(Effect.map((s) => Object.keys(s).length > 0 ? true : undefined)),
      { timeoutMs: 120_000, process: run },
    );

    // dead-letters opens the WAL and the PGlite folder: whichever it reaches first refuses.
    // audit-verify opens only the PGlite folder.
    for (
      const [args, reasons] of [
        [["dead-letters", "list"], ["WAL_LOCKED", "PGLITE_LOCKED"]],
        [["audit-verify"], ["PGLITE_LOCKED"]],
      ] as const
    ) {
      const started = performance.now();
      const refused = yield* runCommand(args, site, { timeoutMs: AT_ONCE_MS });
      const elapsedMs = performance.now() - started;
      const what = `${args.join(" ")}: ${refused.stdout}\n${tail(refused.stderr)}`;
      assert.equal(refused.code, 1, what);
      assert.ok((reasons as ReadonlyArray<unknown>).includes(refused.result?.reason), what);
      assert.ok(String(refused.result?.message).includes(`pid ${run.pid}`), what);
      console.log(
        `${args.join(" ")} refused (${refused.result?.reason}) in ${Math.round(elapsedMs)} ms`,
      );
    }
    assert.ok(!run.exitedYet(), "run still serves");

    const stopped = yield* run.kill("SIGTERM");
    assert.equal(stopped.code, 0, `${stopped.stdout}\n${tail(stopped.stderr)}`);
    // Once run has gone, the same command goes through.
    const after = yield* runCommand(["dead-letters", "list"], site, { timeoutMs: 60_000 });
    assert.equal(after.code, 0, `${after.stdout}\n${tail(after.stderr)}`);
    assert.equal(after.result?.status, "OK");
  }),
);

effectTest(
  "a second reference gate on the same --db folder fails at once naming the first gate's pid",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "two-gates");
    const db = copyDb(TEMPLATE, join(dir, "ig"));
    const env = processEnv({});
    const port = freePort();
    const first = yield* spawnWorldstream(["ig", "--port", String(port), "--db", db], {
      env,
      cwd: dir,
    });
    yield* heldBy(join(db, OWNER_LOCK_FILE), first.pid, first);
    // Listening (and handling SIGTERM) once its health route answers.
    yield* waitFor(
      "the first gate's health route",
      Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/v1/ops/health`).then(
          async (r) => (await r.body?.cancel(), r.ok ? true : undefined),
          () => undefined,
        )
      ),
      { timeoutMs: 60_000, process: first },
    );
    const second = yield* runCommand(["ig", "--port", "0", "--db", db], { dir, vars: {} }, {
      timeoutMs: AT_ONCE_MS,
    });
    const what = `${second.stdout}\n${tail(second.stderr)}`;
    assert.equal(second.code, 1, what);
    assert.equal(second.result?.reason, "PGLITE_LOCKED", what);
    assert.ok(String(second.result?.message).includes(`pid ${first.pid}`), what);
    assert.ok(!first.exitedYet(), "the first gate still serves");
    const stopped = yield* first.kill("SIGTERM");
    assert.equal(stopped.code, 0, `${stopped.stdout}\n${tail(stopped.stderr)}`);
  }),
);

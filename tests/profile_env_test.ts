/**
 * `WORLDSTREAM_PROFILE` picks the profile when `--profile` is absent (how the container chooses
 * one), `--profile` wins over it, and an empty value means `local`. Through the real command
 * (`wal inspect`, which reads the profile and opens nothing else).
 */
import { Effect, type Scope } from "effect";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  fileTempDir,
  processEnv,
  REPO,
  scopedTempDir,
  spawnWorldstream,
  tail,
} from "./_testing.ts";

const TMP = await fileTempDir("profile_env_test_");
const DEADLINE_MS = 30_000;

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

/** `wal inspect` with `args` and `vars` in a fresh folder: its exit and result line. */
function walInspect(name: string, args: ReadonlyArray<string>, vars: Record<string, string>) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const env = { WORLDSTREAM_RUNS_ROOT: join(dir, "runs"), ...vars };
    const ws = yield* spawnWorldstream(["wal", "inspect", ...args], {
      env: processEnv(env),
      cwd: dir,
    });
    const exited = yield* ws.exited(DEADLINE_MS);
    const what = `${args.join(" ")} ${JSON.stringify(vars)}:\n${exited.stdout}\n${
      tail(exited.stderr)
    }`;
    return { dir, exited, what };
  });
}

test(
  "WORLDSTREAM_PROFILE chooses the profile when --profile is absent",
  Effect.gen(function* () {
    // dev needs IG_INGEST_URL (and more): loading it proves dev was chosen, not local.
    const { exited, what } = yield* walInspect("env_dev", [], { WORLDSTREAM_PROFILE: "dev" });
    assert.equal(exited.code, 1, what);
    assert.equal(exited.result?.reason, "PROFILE_ENV_MISSING", what);
    assert.ok(String(exited.result?.message).includes(join(REPO, "profiles", "dev.yaml")), what);
  }),
);

test(
  "--profile wins over WORLDSTREAM_PROFILE, and an empty WORLDSTREAM_PROFILE means local",
  Effect.gen(function* () {
    for (
      const [name, args, profile] of [
        ["flag_wins", ["--profile", "local"], "dev"],
        ["env_empty", [], ""],
      ] as const
    ) {
      const { dir, exited, what } = yield* walInspect(name, args, {
        WORLDSTREAM_PROFILE: profile,
      });
      // local loads with no environment; its runs root holds no WAL yet.
      assert.equal(exited.code, 1, what);
      assert.equal(exited.result?.reason, "BAD_ARGS", what);
      assert.ok(String(exited.result?.message).includes(join(dir, "runs", "wal")), what);
    }
  }),
);

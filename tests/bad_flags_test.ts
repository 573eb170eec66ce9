import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import {
  effectTest,
  OUTPUTS,
  pgliteSite,
  type ProcessSite,
  processSite,
  runCommand,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// Bad flags through the real command (`main.ts <command>` in a subprocess): each ends at once
// with BAD_ARGS naming the flag, a non-zero exit, nothing sent to the gate and nothing written —
// no runs root, no PGlite folder, not even from main.ts's early start (cli/early_start.ts). A
// deadline turns a hang (issue 12: `--max-events 1.5` and `--ig-url not-a-url` used to hang
// forever) into a failure instead of a stuck suite.

const { tmp: TMP, world: WORLD, template: TEMPLATE } = await processSite("bad_flags_test_", 300);
/** Far more than a refusal needs (~1–2 s to load and parse), far less than a hang. */
const DEADLINE_MS = 30_000;

/** A fresh runs root and PGlite folder (neither exists yet) and a gate in this process. */
function site(name: string) {
  return pgliteSite(TMP, name, { template: TEMPLATE, bus: true, gate: true, freshPglite: true });
}

/** Runs `args`, expects BAD_ARGS naming `mentions` within the deadline, and nothing written. */
function refused(s: ProcessSite, args: ReadonlyArray<string>, mentions: string) {
  return Effect.gen(function* () {
    const exited = yield* runCommand(args, s, { timeoutMs: DEADLINE_MS });
    const what = `${args.join(" ")}:\n${exited.stdout}\n${tail(exited.stderr)}`;
    assert.equal(exited.code, 1, what);
    assert.equal(exited.result?.reason, "BAD_ARGS", what);
    assert.ok(String(exited.result?.message).includes(mentions), what);
    assert.ok(!existsSync(s.vars.WORLDSTREAM_PGLITE_DIR), `${what}\nleft a PGlite folder`);
    assert.ok(!existsSync(s.vars.WORLDSTREAM_RUNS_ROOT), `${what}\nleft a runs root`);
  });
}

function gateStats(ig: { url: string }) {
  return Effect.promise(async () => await (await fetch(`${ig.url}/v1/ops/stats`)).json());
}

effectTest(
  "stream refuses fractional and malformed numbers, non-http gate URLs and a repeated output id at once, and sends and writes nothing",
  Effect.gen(function* () {
    const s = yield* site("stream");
    const base = ["stream", "--engine-run-root", WORLD, "--speedup", "0"];
    const withGate = [...base, "--ig-url", s.ig.url];
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [[...withGate, "--max-events", "1.5"], "--max-events"],
      [[...withGate, "--max-events", "1e3"], "--max-events"],
      [[...withGate, "--max-events", "-3"], "--max-events"],
      [[...withGate, "--max-events-per-output", "2.0"], "--max-events-per-output"],
      [[...withGate, "--speedup", "fast"], "--speedup"],
      [[...withGate, "--speedup", "Infinity"], "--speedup"],
      [[...base, "--ig-url", "not-a-url"], "--ig-url"],
      [[...base, "--ig-url", "ftp://127.0.0.1/x"], "ftp:"],
      [[...base, "--ig-url", ""], "--ig-url"],
      [[...withGate, "--output-ids", `${TRAFFIC},${TRAFFIC}`], `${TRAFFIC} twice`],
      [[...withGate, "--output-ids", `${OUTPUTS.join(",")},${TRAFFIC}`], `${TRAFFIC} twice`],
    ];
    for (const [args, mentions] of cases) yield* refused(s, args, mentions);
    assert.deepEqual(yield* gateStats(s.ig), {}, "nothing reached the gate");
  }),
);

effectTest(
  "run, sort, dead-letters, ig and gen-world refuse bad numbers and URLs the same way",
  Effect.gen(function* () {
    const s = yield* site("others");
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["run", "--once", "--engine-run-root", WORLD, "--speedup", "-1"], "--speedup"],
      [["run", "--once", "--engine-run-root", WORLD, "--admin-port", "80.5"], "--admin-port"],
      [["run", "--once", "--engine-run-root", WORLD, "--ig-url", "ftp://x"], "ftp:"],
      [["run", "--once", "--engine-run-root", WORLD, "--ig-url", "not-a-url"], "--ig-url"],
      [["sort", "--engine-run-root", WORLD, "--output-ids", `${TRAFFIC},${TRAFFIC}`], "twice"],
      [["dead-letters", "list", "--limit", "1.5"], "--limit"],
      [["dead-letters", "retry", "--all", "--ig-url", "ftp://x"], "ftp:"],
      [["ig", "--port", "8081.5", "--db", join(s.dir, "ig2")], "--port"],
      [["ig", "--port", "0", "--latency-ms", "0x10", "--db", join(s.dir, "ig2")], "--latency-ms"],
      [["ig", "--port", "0", "--fail-rate", "2", "--db", join(s.dir, "ig2")], "--fail-rate"],
      [["gen-world", "--out", join(s.dir, "w"), "--events", "1.5"], "--events"],
    ];
    for (const [args, mentions] of cases) yield* refused(s, args, mentions);
    assert.ok(!existsSync(join(s.dir, "ig2")), "the gate's folder was not made");
    assert.ok(!existsSync(join(s.dir, "w")), "no world was written");
    assert.deepEqual(yield* gateStats(s.ig), {}, "nothing reached the gate");
  }),
);

effectTest(
  "an unknown flag with WORLDSTREAM_PGLITE_DIR set leaves no PGlite folder behind",
  Effect.gen(function* () {
    const s = yield* site("unknown-flag");
    for (const command of ["stream", "run"]) {
      yield* refused(s, [command, "--engine-run-root", WORLD, "--no-such-flag"], "--no-such-flag");
      yield* refused(s, [command, "--engine-run-root", WORLD, "--speedup"], "--speedup");
    }
    assert.deepEqual(readdirSync(s.dir).sort(), ["ig"], "only the gate's own folder");
  }),
);

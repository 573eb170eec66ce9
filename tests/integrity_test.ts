import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { Effect, type Scope } from "effect";
import type { RunningIg } from "../ig/server.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteSite,
  pgliteTemplate,
  type ProcessSite,
  runCommand,
  SCENARIO_RUN,
  streamArgs,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// Issue 12, "the world must match what vouches for it", through the real commands: a world whose
// gates, parts, links or READY pins do not match what is on disk is refused with its own reason
// code, a message naming the file or field, a non-zero exit, nothing admitted by the reference
// gate and nothing written into the world (no stream view, staging or checkpoint).

const TMP = await fileTempDir("integrity_test_");
const BASE = join(TMP, "base");
const OTHER = join(TMP, "other");
const OUTSIDE = join(TMP, "outside");
Deno.mkdirSync(OUTSIDE);
// OTHER is another world (its parameter hash and oracle pack differ) that a READY for BASE may
// be pointed at.
const [TEMPLATE] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(BASE, 3000),
  makeWorld(OTHER, 2000),
]);
const RECEIPT = JSON.parse(Deno.readTextFileSync(join(BASE, "run_receipt.json")));
const MF = RECEIPT.manifest_fingerprint as string;
const BUNDLE_6B = `data/layer3/6B/validation/manifest_fingerprint=${MF}`;
const TRAFFIC_DIR =
  `data/layer3/6B/${TRAFFIC}/seed=42/parameter_hash=${RECEIPT.parameter_hash}/manifest_fingerprint=${MF}/scenario_id=baseline_v1`;

/** Every path under `root` with its size (links as links), so a test sees nothing was written. */
function tree(root: string): Array<string> {
  const out: Array<string> = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else out.push(`${relative(root, path)} ${e.isSymbolicLink() ? "link" : statSync(path).size}`);
    }
  };
  walk(root);
  return out.sort();
}

/** A test's site: its folder and variables, a copy of the base world and a gate. */
type Site = ProcessSite & { readonly world: string; readonly ig: RunningIg };

/** A site of its own: a copy of the base world, a runs root, a PGlite copy and a gate. */
function site(name: string): Effect.Effect<Site, unknown, Scope.Scope> {
  return pgliteSite(TMP, name, { template: TEMPLATE, bus: true, gate: true }).pipe(
    Effect.map((s) => {
      const world = join(s.dir, "world");
      cpSync(BASE, world, { recursive: true });
      return { ...s, world };
    }),
  );
}

/** Every counter of the gate, over all platform runs. */
function admittedInAll(ig: RunningIg) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`);
    const all = await res.json() as Record<string, Record<string, number>>;
    return Object.values(all).reduce(
      (n, c) => n + (c.admitted ?? 0) + (c.duplicate ?? 0) + (c.quarantined ?? 0),
      0,
    );
  });
}

/** `main.ts stream` of the two process-test outputs of `world`, unpaced. */
function stream(s: Site) {
  return runCommand(
    streamArgs(s.world, s.ig.url, {
      platformRunId: "platform_20260301T000000Z",
      scenarioRunId: SCENARIO_RUN,
    }),
    s,
    { timeoutMs: 120_000 },
  );
}

/**
 * Tampers a fresh world with `damage`, streams it and checks the refusal: `reason`, a message
 * matching `names`, exit 1, nothing at the gate, the world as it was (no view, no staging).
 */
function refusedStream(
  name: string,
  damage: (world: string) => void,
  reason: string,
  names: RegExp,
) {
  return Effect.gen(function* () {
    const s = yield* site(name);
    damage(s.world);
    const before = tree(s.world);
    const exited = yield* stream(s);
    const detail = `${exited.stdout}\n${tail(exited.stderr)}`;
    assert.equal(exited.code, 1, detail);
    assert.equal(exited.result?.status, "FAILED", detail);
    assert.equal(exited.result?.reason, reason, detail);
    assert.match(String(exited.result?.message), names);
    assert.equal(exited.result?.emitted, 0);
    assert.equal(yield* admittedInAll(s.ig), 0, "the gate saw no event");
    assert.deepEqual(tree(s.world), before, "the refused world was written into");
    assert.ok(!existsSync(join(s.world, "stream_view")), "a stream view was started");
  });
}

effectTest(
  "stream refuses a world whose 6B _passed.flag says FAIL: GATE_PASS_INVALID naming the flag",
  refusedStream(
    "flag-fail",
    (w) => Deno.writeTextFileSync(join(w, BUNDLE_6B, "_passed.flag"), "FAIL\n"),
    "GATE_PASS_INVALID",
    /gate\.layer3\.6B\.validation: data\/layer3\/6B\/validation\/.*\/_passed\.flag does not hold sha256_hex = <sha256> \(it reads "FAIL"\)/,
  ),
);

effectTest(
  "stream refuses a world whose validation bundle was edited after its flag: GATE_DIGEST_MISMATCH naming flag and bundle",
  refusedStream(
    "bundle-edited",
    (w) => {
      const report = join(w, BUNDLE_6B, "validation_report.json");
      Deno.writeTextFileSync(
        report,
        Deno.readTextFileSync(report).replace(/"row_count": \d+/, '"row_count": 2009'),
      );
    },
    "GATE_DIGEST_MISMATCH",
    /_passed\.flag holds sha256_hex [a-f0-9]{64}, but the bundle at data\/layer3\/6B\/validation\/.* hashes to [a-f0-9]{64}/,
  ),
);

effectTest(
  "stream refuses a world with a part deleted after gating: OUTPUT_PARTS_MISMATCH naming the part, not a shorter stream",
  refusedStream(
    "part-deleted",
    (w) => Deno.removeSync(join(w, TRAFFIC_DIR, "part-00001.parquet")),
    "OUTPUT_PARTS_MISMATCH",
    /Output s3_event_stream_with_fraud_6B: part data\/.*\/part-00001\.parquet is missing .*vouches for 3 part\(s\), 2 found/,
  ),
);

effectTest(
  "stream refuses a part that links to a file outside the run root: PATH_ESCAPES_ROOT naming the part",
  refusedStream(
    "part-linked",
    (w) => {
      const part = join(w, TRAFFIC_DIR, "part-00001.parquet");
      const away = join(OUTSIDE, "part-linked.parquet");
      Deno.renameSync(part, away);
      Deno.symlinkSync(away, part);
    },
    "PATH_ESCAPES_ROOT",
    /Part .*part-00001\.parquet resolves to .*outside\/part-linked\.parquet, outside the engine run root/,
  ),
);

effectTest(
  "stream refuses an output folder that links outside the run root: PATH_ESCAPES_ROOT naming the folder",
  refusedStream(
    "folder-linked",
    (w) => {
      const folder = join(w, TRAFFIC_DIR);
      const away = join(OUTSIDE, "folder-linked");
      Deno.renameSync(folder, away);
      Deno.symlinkSync(away, folder);
    },
    "PATH_ESCAPES_ROOT",
    /scenario_id=baseline_v1 resolves to .*outside\/folder-linked, outside the engine run root/,
  ),
);

// ---------------------------------------------------------------------------------------------
// READY pins against the world on disk

/** `main.ts run --once` of the site's world into its gate, unpaced. */
function runOnce(s: Site) {
  return runCommand(
    ["run", "--once", "--engine-run-root", s.world, "--speedup", "0", "--ig-url", s.ig.url],
    s,
  );
}

effectTest(
  "run --once refuses a READY for one world when the world it would read is another: WORLD_KEY_MISMATCH naming the fields, nothing sent",
  Effect.gen(function* () {
    const s = yield* site("ready-override");
    // The profile's oracle_engine_run_root beats READY's; here it names OTHER, while the READY
    // run publishes pins the world it was given (BASE's copy).
    const vars = { ...s.vars, ORACLE_ENGINE_RUN_ROOT: OTHER };
    const before = tree(OTHER);
    const exited = yield* runOnce({ ...s, vars });
    const detail = `${exited.stdout}\n${tail(exited.stderr)}`;
    assert.equal(exited.code, 1, detail);
    assert.equal(exited.result?.reason, "WORLD_KEY_MISMATCH", detail);
    assert.match(
      String(exited.result?.message),
      new RegExp(
        `The world at ${OTHER} is not the one the request pins: parameter_hash is [a-f0-9]{64}, pinned ${RECEIPT.parameter_hash}; oracle_pack_id is`,
      ),
    );
    assert.equal(yield* admittedInAll(s.ig), 0, "the gate saw no event");
    assert.deepEqual(tree(OTHER), before, "the other world was written into");
  }),
);

/**
 * Publishes a READY for a copy of BASE (`publish-ready`), lets `tamper` change what it published,
 * then serves the bus with `run --once` (whose own later READY ends the process) and answers the
 * tampered READY's ledger decisions and whether the gate saw anything of its platform run.
 */
function tamperedReady(
  name: string,
  tamper: (published: { busFile: string; factsFile: string }) => void,
) {
  return Effect.gen(function* () {
    const s = yield* site(name);
    const platformRun = "platform_20260301T000001Z";
    const published = yield* runCommand([
      "publish-ready",
      "--engine-run-root",
      s.world,
      "--platform-run-id",
      platformRun,
    ], s);
    assert.equal(published.code, 0, `${published.stdout}\n${tail(published.stderr)}`);
    const busFile = String(published.result?.bus_file);
    const messageId = JSON.parse(Deno.readTextFileSync(busFile)).message_id;
    const factsFile = join(s.vars.WORLDSTREAM_RUNS_ROOT, String(published.result?.facts_view_ref));
    tamper({ busFile, factsFile });
    const before = tree(OTHER);
    const exited = yield* runOnce(s);
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const ledger = Deno.readTextFileSync(join(s.vars.WORLDSTREAM_RUNS_ROOT, "ready_ledger.ndjson"))
      .trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.message_id === messageId);
    assert.equal(ledger.length, 1, JSON.stringify(ledger));
    assert.equal(ledger[0].streamed, false);
    const stats = yield* Effect.promise(() =>
      fetch(`${s.ig.url}/v1/ops/stats`).then((r) => r.json())
    );
    assert.equal(stats[platformRun], undefined, "the tampered READY's run sent nothing");
    assert.deepEqual(tree(OTHER), before, "the other world was written into");
    return ledger[0].latest as Record<string, unknown>;
  });
}

effectTest(
  "a READY whose oracle_pack_ref.engine_run_root points at another world is FAILED WORLD_KEY_MISMATCH and sends nothing",
  Effect.gen(function* () {
    const latest = yield* tamperedReady("ready-tampered", ({ busFile }) => {
      const message = JSON.parse(Deno.readTextFileSync(busFile));
      message.payload.oracle_pack_ref.engine_run_root = OTHER;
      Deno.writeTextFileSync(busFile, JSON.stringify(message));
    });
    assert.deepEqual([latest.status, latest.reason], ["FAILED", "WORLD_KEY_MISMATCH"]);
  }),
);

effectTest(
  "a READY whose run facts file links outside the object store root is FAILED PATH_ESCAPES_ROOT and sends nothing",
  Effect.gen(function* () {
    const latest = yield* tamperedReady("facts-linked", ({ factsFile }) => {
      const away = join(OUTSIDE, "facts-linked.json");
      Deno.renameSync(factsFile, away);
      Deno.symlinkSync(away, factsFile);
    });
    assert.deepEqual([latest.status, latest.reason], ["FAILED", "PATH_ESCAPES_ROOT"]);
  }),
);

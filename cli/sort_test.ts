import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Effect } from "effect";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb, sqlLiteral } from "../stores/duckdb.ts";
import { type SortOptions, type SortResult, sortWorld } from "./sort.ts";
import { regate, regateAt } from "../tests/regate.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));

// One small generated world per file; every test works on its own copy.
const TMP = await Deno.makeTempDir({ prefix: "sort_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const GENERATED = join(TMP, "generated");
await Effect.runPromise(
  genWorld({ out: GENERATED, events: 300 }).pipe(Effect.provide(DuckDb.layer())),
);

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const ARRIVALS = "arrival_events_5B";
/** What the local profile sorts: its traffic list, then its fraud context list. */
const LOCAL_OUTPUTS = [
  TRAFFIC,
  "arrival_events_5B",
  "s1_arrival_entities_6B",
  "s3_flow_anchor_with_fraud_6B",
];

let copies = 0;

/** A private copy of the generated world. */
async function freshWorld(): Promise<string> {
  const root = join(TMP, `world-${++copies}`);
  await cp(GENERATED, root, { recursive: true });
  return root;
}

function sort(options: Partial<SortOptions> & { engineRunRoot: string }): Promise<SortResult> {
  return Effect.runPromise(
    sortWorld({ outputIds: [TRAFFIC], strict: true, requireGatePass: true, ...options }).pipe(
      Effect.provide(DuckDb.layer()),
    ),
  );
}

/** Sorts `outputIds` of `root`, expects the run to fail with `reason`, and returns the result. */
async function sortFails(
  root: string,
  outputIds: ReadonlyArray<string>,
  reason: string,
  options: Partial<SortOptions> = {},
): Promise<SortResult> {
  const result = await sort({ engineRunRoot: root, outputIds, ...options });
  assert.equal(result.status, "FAILED", JSON.stringify(result));
  assert.equal(result.reason, reason, result.message);
  return result;
}

/** The failed output has no view folder and no staging was left behind. */
async function assertNothingWritten(root: string, outputId: string): Promise<void> {
  const views = join(root, "stream_view", "ts_utc");
  assert.equal(await exists(join(views, `output_id=${outputId}`)), false, `${outputId} has a view`);
  assert.deepEqual(await names(join(views, "_staging")), [], "staging was left behind");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function names(dir: string): Promise<Array<string>> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The part files of `outputId` in `root`, in order. */
async function partsOf(root: string, outputId: string): Promise<Array<string>> {
  const found: Array<string> = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(join(dir, e.name));
      else if (/^part-.*\.parquet$/.test(e.name)) found.push(join(dir, e.name));
    }
  };
  const base = outputId === ARRIVALS
    ? join(root, "data/layer2/5B/arrival_events")
    : join(root, "data/layer3/6B", outputId);
  await walk(base);
  return found.sort();
}

/**
 * Replaces `part` with `SELECT <select> FROM read_parquet(part) <rest>`, written by DuckDB, and
 * re-gates the world (as if the engine had vouched for the new part), so the sort's own checks
 * are what the test reaches.
 */
async function rewritePart(part: string, select: string, rest = ""): Promise<void> {
  const tmp = join(dirname(part), "rewrite.tmp");
  const sql = `COPY (SELECT ${select} FROM read_parquet(${sqlLiteral(part)}) ${rest}) TO ${
    sqlLiteral(tmp)
  } (FORMAT parquet)`;
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const session = yield* (yield* DuckDb).session;
      yield* session.exec(sql);
    })).pipe(Effect.provide(DuckDb.layer())),
  );
  await Deno.rename(tmp, part);
  await regateAt(part);
}

// ---------------------------------------------------------------------------------------------
// Function level

Deno.test("a sort refused at the world level fails with its reason and writes nothing", async () => {
  const cases: Array<[string, (root: string) => Promise<void>, string]> = [
    ["no run receipt", (r) => Deno.remove(join(r, "run_receipt.json")), "RUN_RECEIPT_UNREADABLE"],
    [
      "no manifest",
      (r) => Deno.remove(join(r, "_oracle_pack_manifest.json")),
      "SCENARIO_ID_MISSING",
    ],
    [
      "a garbled manifest",
      (r) => Deno.writeTextFile(join(r, "_oracle_pack_manifest.json"), "{"),
      "PACK_MANIFEST_INVALID",
    ],
    ["no seal", (r) => Deno.remove(join(r, "_SEALED.json")), "PACK_NOT_SEALED"],
    [
      "no gate flag",
      async (r) => {
        for await (const e of Deno.readDir(join(r, "data/layer3/6B/validation"))) {
          await Deno.remove(join(r, "data/layer3/6B/validation", e.name, "_passed.flag"));
        }
      },
      "GATE_PASS_MISSING",
    ],
  ];
  for (const [what, damage, reason] of cases) {
    const root = await freshWorld();
    await damage(root);
    const result = await sortFails(root, [TRAFFIC], reason);
    assert.deepEqual(result.outputs, [], what);
    assert.equal(await exists(join(root, "stream_view")), false, `${what}: a stream view exists`);
  }
});

Deno.test("a sort builds nothing when any requested output id is bad", async () => {
  const root = await freshWorld();
  const cases: Array<[string, string]> = [
    ["s9_not_in_catalogue_6B", "NO_TRAFFIC_OUTPUTS"],
    ["../etc", "OUTPUT_ID_INVALID"],
    ["/abs", "OUTPUT_ID_INVALID"],
    ["a'b", "OUTPUT_ID_INVALID"],
  ];
  for (const [bad, reason] of cases) {
    const result = await sortFails(root, [TRAFFIC, ARRIVALS, bad], reason);
    assert.deepEqual(result.outputs, []);
    assert.equal(await exists(join(root, "stream_view")), false, `${bad}: a stream view exists`);
  }
});

Deno.test("a sort of no output ids at all fails NO_TRAFFIC_OUTPUTS", async () => {
  const root = await freshWorld();
  await sortFails(root, [], "NO_TRAFFIC_OUTPUTS");
  assert.equal(await exists(join(root, "stream_view")), false);
});

Deno.test("a part that is not parquet fails PARQUET_UNREADABLE", async () => {
  const root = await freshWorld();
  const [first, second] = await partsOf(root, TRAFFIC);
  await Deno.writeTextFile(first, "this is not a parquet file\n");
  await regate(root);
  await sortFails(root, [TRAFFIC], "PARQUET_UNREADABLE");
  await assertNothingWritten(root, TRAFFIC);

  const truncated = await freshWorld();
  const [, part] = await partsOf(truncated, TRAFFIC);
  const bytes = await Deno.readFile(second);
  await Deno.writeFile(part, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await regate(truncated);
  await sortFails(truncated, [TRAFFIC], "PARQUET_UNREADABLE");
  await assertNothingWritten(truncated, TRAFFIC);
});

Deno.test("a part that lacks the row schema's columns fails ROW_COLUMN_MISSING naming the part, without leaving staging", async () => {
  const root = await freshWorld();
  const [, second] = await partsOf(root, TRAFFIC);
  await rewritePart(second, "ts_utc");
  const result = await sortFails(root, [TRAFFIC], "ROW_COLUMN_MISSING");
  assert.ok(result.message?.includes(second.slice(root.length + 1)), result.message);
  assert.match(result.message ?? "", /lacks column flow_id/);
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("a corrupt later output fails the sort after the earlier ones were built whole", async () => {
  const root = await freshWorld();
  const [part] = await partsOf(root, TRAFFIC);
  await Deno.writeTextFile(part, "PAR1 garbage PAR1");
  await regate(root);
  const result = await sortFails(root, [ARRIVALS, TRAFFIC], "PARQUET_UNREADABLE");
  assert.deepEqual(result.outputs.map((o) => [o.output_id, o.status]), [[ARRIVALS, "BUILT"]]);
  const arrivals = join(root, "stream_view", "ts_utc", `output_id=${ARRIVALS}`);
  assert.ok(await exists(join(arrivals, "_stream_sort_receipt.json")));
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("a null ts_utc fails TS_UTC_NULL", async () => {
  const root = await freshWorld();
  const [, second] = await partsOf(root, TRAFFIC);
  await rewritePart(
    second,
    "* REPLACE (CASE WHEN file_row_number = 5 THEN NULL ELSE ts_utc END AS ts_utc)",
  );
  const result = await sortFails(root, [TRAFFIC], "TS_UTC_NULL");
  assert.match(result.message ?? "", /1 rows/);
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("a ts_utc that is not an RFC 3339 micros instant fails TS_UTC_INVALID", async () => {
  for (const bad of ["yesterday", "2026-02-30T25:00:00.000000Z", "2026-02-28 23:00:00"]) {
    const root = await freshWorld();
    const [, , third] = await partsOf(root, TRAFFIC);
    await rewritePart(
      third,
      `* REPLACE (CASE WHEN file_row_number = 0 THEN ${sqlLiteral(bad)} ELSE ts_utc END AS ts_utc)`,
    );
    await sortFails(root, [TRAFFIC], "TS_UTC_INVALID");
    await assertNothingWritten(root, TRAFFIC);
  }
});

Deno.test("a ts_utc stored as a timestamp rather than text fails TS_UTC_INVALID", async () => {
  const root = await freshWorld();
  for (const part of await partsOf(root, TRAFFIC)) {
    await rewritePart(part, "* REPLACE (CAST(ts_utc AS TIMESTAMP) AS ts_utc)");
  }
  await sortFails(root, [TRAFFIC], "TS_UTC_INVALID");
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("an output folder without part files fails OUTPUT_PARTS_MISSING", async () => {
  const root = await freshWorld();
  for (const part of await partsOf(root, TRAFFIC)) await Deno.remove(part);
  await regate(root);
  await sortFails(root, [TRAFFIC], "OUTPUT_PARTS_MISSING");
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("an output whose parts hold zero rows fails OUTPUT_EMPTY", async () => {
  const root = await freshWorld();
  for (const part of await partsOf(root, TRAFFIC)) await rewritePart(part, "*", "LIMIT 0");
  await sortFails(root, [TRAFFIC], "OUTPUT_EMPTY");
  await assertNothingWritten(root, TRAFFIC);
});

Deno.test("parts with their own filename or file_row_number column fail ROW_COLUMN_RESERVED, not a view with wrong provenance", async () => {
  // A source column of either name hides DuckDB's provenance column of that name: the view
  // would order and resume by the part's values instead of the file and row it came from.
  // Open and closed row schemas alike (arrival_events_5B allows undeclared columns).
  for (const outputId of [TRAFFIC, ARRIVALS]) {
    for (const column of ["filename", "file_row_number"]) {
      const root = await freshWorld();
      const [first] = await partsOf(root, outputId);
      for (const part of await partsOf(root, outputId)) {
        await rewritePart(part, `*, 7 AS ${column}`);
      }
      const result = await sortFails(root, [outputId], "ROW_COLUMN_RESERVED");
      assert.ok(result.message?.includes(first.slice(root.length + 1)), result.message);
      assert.match(result.message ?? "", new RegExp(`a column named ${column}`));
      await assertNothingWritten(root, outputId);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The CLI, as a subprocess

/** The environment a CLI run sees: enough for deno itself, none of worldstream's variables. */
function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", ...extra };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

interface CliRun {
  readonly code: number;
  readonly result: Record<string, unknown>;
  readonly stderr: string;
}

async function cli(args: ReadonlyArray<string>, env = cliEnv()): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: REPO,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trimEnd();
  const stderr = new TextDecoder().decode(out.stderr);
  const last = stdout.split("\n").at(-1) ?? "";
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(last);
  } catch {
    assert.fail(`The last stdout line is not JSON: ${JSON.stringify(last)}\n${stderr}`);
  }
  return { code: out.code, result, stderr };
}

async function cliFails(args: ReadonlyArray<string>, reason: string, env?: Record<string, string>) {
  const run = await cli(args, env);
  assert.equal(run.result.status, "FAILED", JSON.stringify(run.result));
  assert.equal(run.result.reason, reason, String(run.result.message));
  assert.notEqual(run.code, 0);
  return run;
}

Deno.test("the CLI sorts a good world with exit 0, then skips every output on a second sort", async () => {
  const root = await freshWorld();
  const first = await cli(["sort", "--engine-run-root", root]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.result.status, "OK");
  const built = first.result.outputs as Array<Record<string, unknown>>;
  assert.deepEqual(
    built.map((o) => [o.output_id, o.status]),
    LOCAL_OUTPUTS.map((id) => [id, "BUILT"]),
  );
  assert.equal(built[0].row_count, 300);
  assert.deepEqual(await names(join(root, "stream_view", "ts_utc", "_staging")), []);

  const second = await cli(["sort", "--engine-run-root", root]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.result.status, "OK");
  const skipped = second.result.outputs as Array<Record<string, unknown>>;
  assert.deepEqual(
    skipped.map((o) => [o.output_id, o.status, o.row_count, o.stream_view_id]),
    built.map((o) => [o.output_id, "SKIPPED", o.row_count, o.stream_view_id]),
  );
});

Deno.test("the CLI fails PROFILE_UNREADABLE for a profile that does not exist", async () => {
  const root = await freshWorld();
  await cliFails(
    ["sort", "--profile", "/nonexistent.yaml", "--engine-run-root", root],
    "PROFILE_UNREADABLE",
  );
  assert.equal(await exists(join(root, "stream_view")), false);
});

Deno.test("the CLI fails BAD_ARGS for an unknown flag", async () => {
  const root = await freshWorld();
  await cliFails(["sort", "--engine-run-root", root, "--output-idz", TRAFFIC], "BAD_ARGS");
  assert.equal(await exists(join(root, "stream_view")), false);
});

Deno.test("the CLI fails ENGINE_ROOT_MISSING with no --engine-run-root and no ORACLE_ENGINE_RUN_ROOT", async () => {
  await cliFails(["sort"], "ENGINE_ROOT_MISSING");
});

Deno.test("the CLI fails PROFILE_ENV_MISSING for a profile whose variables are not set", async () => {
  const root = await freshWorld();
  const run = await cliFails(
    ["sort", "--profile", "dev", "--engine-run-root", root],
    "PROFILE_ENV_MISSING",
  );
  assert.match(String(run.result.message), /WORLDSTREAM_RUNS_ROOT|IG_|CONTROL_BUS_|DATABASE_URL/);
  assert.equal(await exists(join(root, "stream_view")), false);
});

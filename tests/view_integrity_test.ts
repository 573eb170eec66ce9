import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { Effect } from "effect";
import { startIg } from "../ig/server.ts";
import { regate, regateAt } from "./regate.ts";
import { DuckDb, sqlLiteral } from "../stores/duckdb.ts";
import {
  CONTEXT,
  copyDb,
  effectTest,
  type Exited,
  gateAdmitted,
  gateCounts,
  OUTPUTS,
  processSite,
  runCommand,
  SCENARIO_RUN,
  scopedTempDir,
  streamArgs,
  tail,
  TRAFFIC,
  worldAt,
} from "./_testing.ts";
import { resolveOutput } from "../stores/world.ts";

// A stream view is only streamed when it is the view of the world on disk: through the real
// commands (`main.ts sort` and `main.ts stream` as subprocesses, the reference gate in this
// process), parts whose columns do not fit the row schema or each other are refused before a
// view is built, a view whose sources were rewritten or whose manifest was edited is refused,
// and a world that is moved or reached through a symlink keeps its views. Every refusal names
// the part or file and the column or field, exits non-zero, sends nothing and writes no view.

const { tmp: TMP, world: PRISTINE, template: TEMPLATE, rows: ROWS, total: TOTAL } =
  await processSite("view_integrity_test_", 3000);

/** A private copy of the generated world (times kept) in a folder of the test's own. */
function site(name: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const world = join(dir, "world");
    const out = yield* Effect.promise(() =>
      new Deno.Command("cp", { args: ["-a", PRISTINE, world] }).output()
    );
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    return { dir, world, ig };
  });
}

let runs = 0;

/** `main.ts stream` of both outputs of `world` into `igUrl`, unpaced; its exit and platform run. */
function stream(dir: string, world: string, igUrl: string) {
  const run = `platform_20260301T1200${String(++runs).padStart(2, "0")}Z`;
  const vars = {
    WORLDSTREAM_RUNS_ROOT: join(dir, `runs-${runs}`),
    WORLDSTREAM_PGLITE_DIR: copyDb(TEMPLATE, join(dir, `pg-${runs}`)),
    CONTROL_BUS_ROOT: join(dir, "bus"),
  };
  return runCommand(
    streamArgs(world, igUrl, { platformRunId: run, scenarioRunId: SCENARIO_RUN }),
    { dir, vars },
  ).pipe(Effect.map((exited) => ({ exited, run })));
}

/** `main.ts sort` of `outputIds` (default: both outputs) of `world`, plus `extra` flags. */
function sort(
  dir: string,
  world: string,
  extra: ReadonlyArray<string> = [],
  outputIds: ReadonlyArray<string> = OUTPUTS,
) {
  return runCommand(
    ["sort", "--engine-run-root", world, "--output-ids", outputIds.join(","), ...extra],
    { dir, vars: { WORLDSTREAM_RUNS_ROOT: join(dir, "runs-sort") } },
  );
}

function describe(exited: Exited): string {
  return `${exited.stdout}\n${tail(exited.stderr)}`;
}

/** Fails unless the command failed with `reason` and a message matching every pattern. */
function assertRefused(exited: Exited, reason: string, ...patterns: ReadonlyArray<RegExp>) {
  assert.notEqual(exited.code, 0, describe(exited));
  assert.equal(exited.result?.status, "FAILED", describe(exited));
  assert.equal(exited.result?.reason, reason, describe(exited));
  for (const pattern of patterns) assert.match(String(exited.result?.message), pattern);
}

function viewsOf(world: string) {
  return join(world, "stream_view", "ts_utc");
}

/** No view folder for either output and no staging left behind. */
function assertNoView(world: string) {
  for (const id of OUTPUTS) {
    assert.ok(!existsSync(join(viewsOf(world), `output_id=${id}`)), `${id} has a view`);
  }
  const staging = join(viewsOf(world), "_staging");
  assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], "staging left behind");
}

/** The part files of an output of `world`, in order. */
function partsOf(world: string, outputId: string) {
  return Effect.runPromise(
    worldAt(world).pipe(
      Effect.flatMap((w) => resolveOutput(w, outputId)),
      Effect.map((o) => o.parts),
    ),
  );
}

/** Replaces `part` with `SELECT <select> FROM read_parquet(part)`, written by DuckDB. */
function rewritePart(part: string, select: string) {
  const tmp = join(dirname(part), "rewrite.tmp");
  return Effect.scoped(Effect.gen(function* () {
    const session = yield* (yield* DuckDb).session;
    yield* session.exec(
      `COPY (SELECT ${select} FROM read_parquet(${sqlLiteral(part)})) TO ${
        sqlLiteral(tmp)
      } (FORMAT parquet)`,
    );
  })).pipe(
    Effect.provide(DuckDb.layer({ threads: 1 })),
    Effect.andThen(Effect.promise(() => Deno.rename(tmp, part))),
    // Re-gated over the new bytes, as an engine that validated them would: what is tested here is
    // the view's check of the parts, not the gate's (tests/integrity_test.ts has those).
    Effect.andThen(Effect.promise(() => regateAt(part))),
  );
}

/** Rewrites every part of `outputId` in `world`; answers the parts' paths relative to it. */
function rewriteAll(world: string, outputId: string, select: string) {
  return Effect.gen(function* () {
    const parts = yield* Effect.promise(() => partsOf(world, outputId));
    for (const part of parts) yield* rewritePart(part, select);
    return parts.map((p) => p.slice(world.length + 1));
  });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------------------------------------
// Row shapes, checked before a view is built

effectTest(
  "stream refuses parts that lack a required column with ROW_COLUMN_MISSING naming the part and the column, sends nothing and builds no view",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("missing");
    const [first] = yield* rewriteAll(world, TRAFFIC, "* EXCLUDE (amount)");
    const { exited, run } = yield* stream(dir, world, ig.url);
    assertRefused(
      exited,
      "ROW_COLUMN_MISSING",
      new RegExp(`part ${escape(first)}: lacks column amount`),
    );
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
    assertNoView(world);
  }),
);

effectTest(
  "stream refuses amount stored as VARCHAR with ROW_COLUMN_TYPE_MISMATCH naming the part, the column and both types",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("varchar");
    const [first] = yield* rewriteAll(
      world,
      TRAFFIC,
      "* REPLACE (CAST(amount AS VARCHAR) AS amount)",
    );
    const { exited, run } = yield* stream(dir, world, ig.url);
    assertRefused(
      exited,
      "ROW_COLUMN_TYPE_MISMATCH",
      new RegExp(`part ${escape(first)}: column amount is VARCHAR, the row schema wants number`),
    );
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
    assertNoView(world);
  }),
);

effectTest(
  "an extra column in one part is refused, never dropped: PAYLOAD_COLUMN_UNDECLARED for a closed row schema, PART_COLUMNS_DIFFER for an open one",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("extra");
    // The traffic output's row schema is closed: the column is not allowed anywhere.
    const [, second] = yield* Effect.promise(() => partsOf(world, TRAFFIC));
    yield* rewritePart(second, "*, 'x' AS note");
    const closed = yield* stream(dir, world, ig.url);
    assertRefused(
      closed.exited,
      "PAYLOAD_COLUMN_UNDECLARED",
      new RegExp(`part ${escape(second.slice(world.length + 1))}: has a column note`),
    );
    assert.deepEqual(yield* gateCounts(ig, closed.run), {
      admitted: 0,
      duplicate: 0,
      quarantined: 0,
    });
    assertNoView(world);

    // arrival_events_5B's is open: the column may be there, but then in every part. Through
    // `sort`, for an output sorted first.
    yield* rewritePart(second, "* EXCLUDE (note)");
    const [, other] = yield* Effect.promise(() => partsOf(world, CONTEXT));
    yield* rewritePart(other, "*, 'x' AS note");
    const open = yield* sort(dir, world, [], [CONTEXT, TRAFFIC]);
    assertRefused(
      open,
      "PART_COLUMNS_DIFFER",
      new RegExp(`part ${escape(other.slice(world.length + 1))}: has a column note that part `),
    );
    assertNoView(world);
  }),
);

effectTest(
  "stream refuses a part with its own file_row_number column with ROW_COLUMN_RESERVED instead of building a view with wrong provenance",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("reserved");
    const [first] = yield* rewriteAll(world, TRAFFIC, "*, 0 AS file_row_number");
    const { exited, run } = yield* stream(dir, world, ig.url);
    assertRefused(
      exited,
      "ROW_COLUMN_RESERVED",
      new RegExp(`part ${escape(first)}: has a column named file_row_number`),
    );
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
    assertNoView(world);
  }),
);

// ---------------------------------------------------------------------------------------------
// Stale views and edited manifests

effectTest(
  "parts rewritten after sort (same names, same row count, new amounts) make the view STREAM_VIEW_STALE for stream and sort; sort --repair rebuilds it and stream then sends the new amounts",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("stale");
    const built = yield* sort(dir, world);
    assert.equal(built.code, 0, describe(built));
    const viewDir = join(viewsOf(world), `output_id=${TRAFFIC}`);
    const receipt = Deno.readTextFileSync(join(viewDir, "_stream_sort_receipt.json"));

    const parts = yield* Effect.promise(() => partsOf(world, TRAFFIC));
    for (const part of parts) {
      const { mtime } = Deno.statSync(part);
      yield* rewritePart(part, "* REPLACE (amount + 1000000 AS amount)");
      // Even with its old modification time the part is told apart (by its footer).
      Deno.utimeSync(part, mtime!, mtime!);
    }
    const first = parts[0].slice(world.length + 1);
    const stale = new RegExp(`source part ${escape(first)} changed \\(.*footer_sha256`);

    const streamed = yield* stream(dir, world, ig.url);
    assertRefused(streamed.exited, "STREAM_VIEW_STALE", stale, /sort --repair/);
    assert.deepEqual(yield* gateCounts(ig, streamed.run), {
      admitted: 0,
      duplicate: 0,
      quarantined: 0,
    });
    const sorted = yield* sort(dir, world);
    assertRefused(sorted, "STREAM_VIEW_STALE", stale);
    assert.equal(
      Deno.readTextFileSync(join(viewDir, "_stream_sort_receipt.json")),
      receipt,
      "the stale view was left as it was",
    );

    const repaired = yield* sort(dir, world, ["--repair"]);
    assert.equal(repaired.code, 0, describe(repaired));
    const outputs = repaired.result?.outputs as Array<{ output_id: string; status: string }>;
    assert.deepEqual(outputs.map((o) => [o.output_id, o.status]), [
      [TRAFFIC, "BUILT"],
      [CONTEXT, "SKIPPED"],
    ]);

    const again = yield* stream(dir, world, ig.url);
    assert.equal(again.exited.code, 0, describe(again.exited));
    assert.equal(again.exited.result?.status, "STREAMED");
    const admitted = yield* gateAdmitted(ig, again.run);
    assert.equal(admitted.length, TOTAL);
    // Every traffic envelope carries an amount from the rewritten parts (the generator's
    // amounts are far below a million).
    const amounts = admitted.filter((e) => e.event_type === TRAFFIC).map((e) =>
      (e.payload as { amount: number }).amount
    );
    assert.equal(amounts.length, ROWS[TRAFFIC]);
    assert.ok(amounts.every((a) => a >= 1000000), "an envelope carries an amount from before");
  }),
);

effectTest(
  "a part removed after sort makes the view STREAM_VIEW_STALE naming the part",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("removed");
    const built = yield* sort(dir, world);
    assert.equal(built.code, 0, describe(built));
    const parts = yield* Effect.promise(() => partsOf(world, TRAFFIC));
    Deno.removeSync(parts[1]);
    // Re-gated without it (unre-gated, the bundle's part list refuses it: integrity_test.ts).
    yield* Effect.promise(() => regate(world));
    const { exited, run } = yield* stream(dir, world, ig.url);
    assertRefused(
      exited,
      "STREAM_VIEW_STALE",
      new RegExp(`source part ${escape(parts[1].slice(world.length + 1))} was removed`),
    );
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
  }),
);

effectTest(
  "a view manifest edited after sort is refused by stream, naming the field: output_id STREAM_VIEW_OUTPUT_MISMATCH, world_key STREAM_VIEW_ID_MISMATCH, garbled STREAM_VIEW_MANIFEST_INVALID",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("manifest");
    const built = yield* sort(dir, world);
    assert.equal(built.code, 0, describe(built));
    const path = join(viewsOf(world), `output_id=${TRAFFIC}`, "_stream_view_manifest.json");
    const original = Deno.readTextFileSync(path);
    const edits: Array<[string, (m: Record<string, unknown>) => unknown, string, RegExp]> = [
      [
        "output_id",
        (m) => ({ ...m, output_id: CONTEXT }),
        "STREAM_VIEW_OUTPUT_MISMATCH",
        new RegExp(`_stream_view_manifest.json output_id is "${CONTEXT}"`),
      ],
      [
        "world_key.seed",
        (m) => ({ ...m, world_key: { ...(m.world_key as object), seed: 43 } }),
        "STREAM_VIEW_ID_MISMATCH",
        /_stream_view_manifest.json world_key.seed is 43, expected 42/,
      ],
      [
        "garbled",
        () => undefined,
        "STREAM_VIEW_MANIFEST_INVALID",
        /_stream_view_manifest.json/,
      ],
    ];
    for (const [what, edit, reason, pattern] of edits) {
      const edited = edit(JSON.parse(original));
      Deno.writeTextFileSync(path, edited === undefined ? "{" : JSON.stringify(edited));
      const { exited, run } = yield* stream(dir, world, ig.url);
      assertRefused(exited, reason, pattern);
      assert.deepEqual(
        yield* gateCounts(ig, run),
        { admitted: 0, duplicate: 0, quarantined: 0 },
        what,
      );
    }
  }),
);

// ---------------------------------------------------------------------------------------------
// Moved worlds

effectTest(
  "a world moved after sort, or reached through a symlink, keeps its views: sort skips them and stream sends the whole world",
  Effect.gen(function* () {
    const { dir, world, ig } = yield* site("moved");
    const built = yield* sort(dir, world);
    assert.equal(built.code, 0, describe(built));
    const ids = (built.result?.outputs as Array<{ stream_view_id: string }>).map((o) =>
      o.stream_view_id
    );

    const moved = join(dir, "elsewhere", "world");
    Deno.mkdirSync(dirname(moved));
    Deno.renameSync(world, moved);
    const link = join(dir, "link");
    Deno.symlinkSync(moved, link);

    for (const root of [moved, link]) {
      const again = yield* sort(dir, root);
      assert.equal(again.code, 0, describe(again));
      const outputs = again.result?.outputs as Array<{ status: string; stream_view_id: string }>;
      assert.deepEqual(outputs.map((o) => o.status), ["SKIPPED", "SKIPPED"], root);
      assert.deepEqual(outputs.map((o) => o.stream_view_id), ids, root);
    }
    const { exited, run } = yield* stream(dir, moved, ig.url);
    assert.equal(exited.code, 0, describe(exited));
    assert.equal(exited.result?.status, "STREAMED");
    assert.deepEqual(yield* gateCounts(ig, run), {
      admitted: TOTAL,
      duplicate: 0,
      quarantined: 0,
    });
  }),
);

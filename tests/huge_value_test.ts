import assert from "node:assert/strict";
import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { regate } from "./regate.ts";
import { DuckDb } from "../stores/duckdb.ts";
import {
  effectTest,
  gateCounts,
  pgliteSite,
  processSite,
  REPO,
  runCommand,
  SCENARIO_RUN,
  streamArgs,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// Huge values in a world (`main.ts stream` as a process, with the V8 heap limit of deno.json's
// `stream` task): a string field of 20 MB or 70 MB in the output's first event. With DuckDB's
// default memory the run fails DUCKDB_OUT_OF_MEMORY naming the output, the column and the knob
// (never PARQUET_UNREADABLE: the file is fine); with more memory the envelope is refused
// ENVELOPE_TOO_LARGE naming the output, the event and the source row, before anything is sent.
// Either way the process ends with its result line, and the gate admits nothing.

const { tmp: TMP, world: WORLD, template: TEMPLATE } = await processSite("huge_value_test_", 300);

/** The V8 flags of deno.json's `stream` task, the way a user runs the command. */
const STREAM_V8_FLAGS = (() => {
  const tasks = (JSON.parse(readFileSync(join(REPO, "deno.json"), "utf8")) as {
    tasks: Record<string, string>;
  }).tasks;
  const flags = /--v8-flags=(\S+)/.exec(tasks.stream)?.[1];
  assert.ok(flags, "deno.json's stream task sets V8 flags");
  return flags;
})();

interface ResultLine {
  readonly status: string;
  readonly reason: string | null;
  readonly message?: string;
  readonly emitted: number;
}

/**
 * A copy of the world whose traffic output's first event (in stream order) has a campaign_id of
 * `mb` million characters, written with DuckDB; the gate bundles vouching for the part are made
 * again over the new file, as the engine would, so the world is exactly as valid as before.
 */
function hugeWorld(dir: string, mb: number) {
  return Effect.gen(function* () {
    const root = join(dir, "world");
    cpSync(WORLD, root, { recursive: true });
    const session = yield* (yield* DuckDb).session;
    const traffic = join(root, "data", "layer3", "6B", TRAFFIC);
    const [first] = yield* session.rows<{ filename: string; row: bigint }>(
      `SELECT filename, file_row_number AS row
       FROM read_parquet($glob, filename = true, file_row_number = true, hive_partitioning = false)
       ORDER BY ts_utc, filename, file_row_number LIMIT 1`,
      { glob: join(traffic, "**", "part-*.parquet") },
    );
    const part = first.filename;
    yield* session.exec(
      `COPY (
         SELECT * EXCLUDE (file_row_number) REPLACE (
           CASE WHEN file_row_number = $row THEN repeat('x', $chars) ELSE campaign_id END
             AS campaign_id)
         FROM read_parquet($part, file_row_number = true) ORDER BY file_row_number
       ) TO '${part}.tmp' (FORMAT parquet)`,
      { row: first.row, chars: mb * 1_000_000, part },
    );
    yield* Effect.promise(() => Deno.rename(`${part}.tmp`, part));
    yield* Effect.promise(() => regate(root));
    return root;
  }).pipe(Effect.scoped, Effect.provide(DuckDb.layer({ threads: 1, memoryLimit: "2GB" })));
}

function streamHuge(name: string, mb: number, duckdbMemory: string | undefined) {
  return Effect.gen(function* () {
    const site = yield* pgliteSite(TMP, name, { template: TEMPLATE, gate: true });
    const world = yield* hugeWorld(site.dir, mb);
    const { ig } = site;
    const run = "platform_20260302T000000Z";
    const vars = {
      ...site.vars,
      DENO_V8_FLAGS: STREAM_V8_FLAGS,
      ...(duckdbMemory ? { WORLDSTREAM_DUCKDB_MEMORY: duckdbMemory } : {}),
    };
    const exited = yield* runCommand(
      streamArgs(world, ig.url, {
        outputIds: [TRAFFIC],
        platformRunId: run,
        scenarioRunId: SCENARIO_RUN,
      }),
      { dir: site.dir, vars },
    );
    const line = exited.result as unknown as ResultLine | undefined;
    assert.ok(line, `a result line:\n${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(exited.signal, null);
    assert.equal(line.status, "FAILED");
    assert.equal(line.emitted, 0);
    assert.equal((yield* gateCounts(ig, run)).admitted, 0, "nothing admitted");
    return line;
  });
}

effectTest(
  "a 20 MB string field with DuckDB's default memory fails DUCKDB_OUT_OF_MEMORY naming the output, the column and WORLDSTREAM_DUCKDB_MEMORY; nothing is sent",
  Effect.gen(function* () {
    const line = yield* streamHuge("oom-20", 20, undefined);
    assert.equal(line.reason, "DUCKDB_OUT_OF_MEMORY");
    assert.match(line.message ?? "", new RegExp(TRAFFIC));
    assert.match(line.message ?? "", /campaign_id/);
    assert.match(line.message ?? "", /WORLDSTREAM_DUCKDB_MEMORY/);
  }),
);

effectTest(
  "a 70 MB string field with DuckDB's default memory fails building the view DUCKDB_OUT_OF_MEMORY, not PARQUET_UNREADABLE: the file is fine",
  Effect.gen(function* () {
    const line = yield* streamHuge("oom-70", 70, undefined);
    assert.equal(line.reason, "DUCKDB_OUT_OF_MEMORY", line.message);
    assert.match(line.message ?? "", new RegExp(`Output ${TRAFFIC}`));
    assert.match(line.message ?? "", /WORLDSTREAM_DUCKDB_MEMORY/);
  }),
);

for (const mb of [20, 70]) {
  effectTest(
    `a ${mb} MB string field with more DuckDB memory is refused ENVELOPE_TOO_LARGE naming the output, the event and the row, under the stream task's V8 heap limit; nothing is sent`,
    Effect.gen(function* () {
      const line = yield* streamHuge(`too-large-${mb}`, mb, "1GB");
      assert.equal(line.reason, "ENVELOPE_TOO_LARGE", line.message);
      const message = line.message ?? "";
      assert.match(message, new RegExp(`Output ${TRAFFIC}`));
      assert.match(message, /event [0-9a-f]{64}/);
      assert.match(message, /part-\d+\.parquet row \d+\)/);
      assert.match(message, /max_body_bytes/);
    }),
  );
}

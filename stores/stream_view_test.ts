import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Exit } from "effect";
import { resolveOutput, resolveWorld } from "./world.ts";
import { OracleStore } from "./oracle.ts";
import { decodeJsonText } from "../schemas/decode.ts";
import { StreamSortReceipt, StreamViewManifest } from "../schemas/stream_view.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "./duckdb.ts";
import {
  type BuildOptions,
  buildStreamView,
  compareStats,
  viewDir,
  type ViewSource,
} from "./stream_view_build.ts";
import {
  openViewReader,
  streamViewId,
  type ViewPosition,
  type ViewRow,
} from "./stream_view_read.ts";

const OUTPUT = "s3_event_stream_with_fraud_6B";
const run = <A, E>(eff: Effect.Effect<A, E, DuckDb>) =>
  Effect.runPromise(eff.pipe(Effect.provide(DuckDb.layer())));
const runExit = <A, E>(eff: Effect.Effect<A, E, DuckDb>) =>
  Effect.runPromiseExit(eff.pipe(Effect.provide(DuckDb.layer())));

const base = await Deno.makeTempDir({ prefix: "ws-view-" });
const pristine = join(base, "pristine");
await run(genWorld({ out: pristine, events: 3000, seed: 7 }));

async function freshWorld(name: string): Promise<string> {
  const dest = join(base, name);
  const out = await new Deno.Command("cp", { args: ["-r", pristine, dest] }).output();
  assert.ok(out.success);
  return dest;
}

async function sourceOf(root: string, outputId = OUTPUT): Promise<ViewSource> {
  const world = await Effect.runPromise(
    resolveWorld(root, { strict: true, requireGatePass: true }).pipe(
      Effect.provide(OracleStore.layer),
    ),
  );
  const output = await Effect.runPromise(resolveOutput(world, outputId));
  return {
    engineRunRoot: world.engineRunRoot,
    engineRunId: world.runReceipt.run_id,
    worldKey: world.worldKey,
    outputId,
    parts: output.parts,
    streamViewRoot: join(world.engineRunRoot, "stream_view", "ts_utc"),
    rowShape: world.pack.rows.get(outputId)!,
  };
}

const build = (source: ViewSource, options?: BuildOptions) => buildStreamView(source, options);

function failureReason(exit: Exit.Exit<unknown, unknown>): string | undefined {
  if (Exit.isSuccess(exit)) return undefined;
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail");
  return (fail?.error as { reason?: string } | undefined)?.reason;
}

async function readAll(dir: string, source: ViewSource, after?: ViewPosition) {
  return await run(Effect.scoped(Effect.gen(function* () {
    const cursor = yield* openViewReader(dir, {
      streamViewId: streamViewId(source),
      outputId: source.outputId,
    }, after);
    const rows: ViewRow[] = [];
    for (let batch = yield* cursor.next; batch !== undefined; batch = yield* cursor.next) {
      rows.push(...batch);
    }
    return rows;
  })));
}

Deno.test("a built view holds every source row exactly once, globally ordered by ts_utc, file and row", async () => {
  const root = await freshWorld("ordered");
  const source = await sourceOf(root);
  const result = await run(build(source));
  assert.equal(result.status, "BUILT");
  assert.equal(result.row_count, 3000);
  assert.equal(result.stream_view_id, streamViewId(source));

  // An independent DuckDB query over the published files confirms order, counts and content.
  const check = await run(Effect.scoped(Effect.gen(function* () {
    const s = yield* (yield* DuckDb).session;
    const view = join(viewDir(source.streamViewRoot, OUTPUT), "part-*.parquet");
    const src = source.parts;
    return yield* s.rows<Record<string, bigint>>(
      `WITH v AS (SELECT *, row_number() OVER () AS pos FROM read_parquet($view)),
            o AS (SELECT *, lag(ts_utc) OVER (ORDER BY pos) AS p_ts, lag(filename) OVER (ORDER BY pos) AS p_f,
                         lag(file_row_number) OVER (ORDER BY pos) AS p_r FROM v)
       SELECT
         (SELECT count(*) FROM v) AS view_rows,
         (SELECT count(*) FROM read_parquet($src)) AS source_rows,
         (SELECT count(*) FROM o WHERE p_ts IS NOT NULL AND (ts_utc, filename, file_row_number) <= (p_ts, p_f, p_r)) AS out_of_order,
         (SELECT count(*) FROM (SELECT flow_id, event_seq, amount, fraud_flag FROM read_parquet($src)
                                EXCEPT ALL SELECT flow_id, event_seq, amount, fraud_flag FROM v)) AS missing_rows,
         (SELECT count(*) - count(DISTINCT (filename, file_row_number)) FROM v) AS duplicate_positions`,
      { view, src },
    );
  })));
  assert.deepEqual(check[0], {
    view_rows: 3000n,
    source_rows: 3000n,
    out_of_order: 0n,
    missing_rows: 0n,
    duplicate_positions: 0n,
  });
});

Deno.test("the view's manifest and receipt follow the platform's format and agree with the view", async () => {
  const root = await freshWorld("files");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  const manifest = await Effect.runPromise(
    decodeJsonText(StreamViewManifest, "STREAM_VIEW_MISSING", "manifest")(
      await Deno.readTextFile(join(view_dir, "_stream_view_manifest.json")),
    ),
  );
  const receipt = await Effect.runPromise(
    decodeJsonText(StreamSortReceipt, "STREAM_RECEIPT_MISMATCH", "receipt")(
      await Deno.readTextFile(join(view_dir, "_stream_sort_receipt.json")),
    ),
  );
  assert.equal(manifest.stream_view_id, receipt.stream_view_id);
  assert.deepEqual(receipt.sort_keys, ["ts_utc", "filename", "file_row_number"]);
  assert.deepEqual(receipt.raw_stats, receipt.sorted_stats);
  assert.equal(receipt.sorted_stats.row_count, 3000);
  assert.ok(receipt.sorted_stats.min_ts_utc! <= receipt.sorted_stats.max_ts_utc!);
  const staging = [...Deno.readDirSync(join(source.streamViewRoot, "_staging"))];
  assert.deepEqual(staging, [], "no staging left behind");
});

Deno.test("building the same view again is skipped, and a receipt that no longer matches is refused", async () => {
  const root = await freshWorld("idempotent");
  const source = await sourceOf(root);
  const first = await run(build(source));
  const second = await run(build(source));
  assert.equal(second.status, "SKIPPED");
  assert.equal(second.stream_view_id, first.stream_view_id);

  const receiptPath = join(first.view_dir, "_stream_sort_receipt.json");
  const receipt = JSON.parse(await Deno.readTextFile(receiptPath));
  receipt.source_locator_digest = "0".repeat(64);
  await Deno.writeTextFile(receiptPath, JSON.stringify(receipt));
  assert.equal(failureReason(await runExit(build(source))), "STREAM_RECEIPT_MISMATCH");

  await Deno.writeTextFile(receiptPath, "{not json");
  assert.equal(failureReason(await runExit(build(source))), "STREAM_RECEIPT_MISMATCH");
});

Deno.test("a view folder without a receipt is refused, and rebuilt when a repair is asked for", async () => {
  const root = await freshWorld("partial");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  await Deno.remove(join(view_dir, "_stream_sort_receipt.json"));
  assert.equal(failureReason(await runExit(build(source))), "STREAM_VIEW_PARTIAL_EXISTS");
  const repaired = await run(build(source, { repair: true }));
  assert.equal(repaired.status, "BUILT");
  assert.equal(repaired.row_count, 3000);
});

Deno.test("staging left by a crashed build is removed and the view is built whole", async () => {
  const root = await freshWorld("crash");
  const source = await sourceOf(root);
  const stale = join(source.streamViewRoot, "_staging", `output_id=${OUTPUT}.crashed`);
  await Deno.mkdir(stale, { recursive: true });
  await Deno.writeTextFile(join(stale, "part-00000.parquet"), "half a file");
  const result = await run(build(source));
  assert.equal(result.status, "BUILT");
  await assert.rejects(() => Deno.stat(stale));
  assert.equal((await readAll(result.view_dir, source)).length, 3000);
});

Deno.test("the reader yields every row in view order with consecutive sequence numbers and no provenance columns", async () => {
  const root = await freshWorld("read");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  const rows = await readAll(view_dir, source);
  assert.equal(rows.length, 3000);
  rows.forEach((r, i) => assert.equal(r.position.seq, i));
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1].position, b = rows[i].position;
    assert.ok(
      a.ts_utc < b.ts_utc || (a.ts_utc === b.ts_utc &&
        (a.filename < b.filename ||
          (a.filename === b.filename && a.file_row_number < b.file_row_number))),
      `row ${i} is out of order`,
    );
  }
  assert.ok(!("filename" in rows[0].row) && !("file_row_number" in rows[0].row));
  assert.equal(rows[0].row.ts_utc, rows[0].position.ts_utc);
  assert.ok("flow_id" in rows[0].row && "event_seq" in rows[0].row);
});

Deno.test("reading after a position yields exactly the rows that follow it, even among equal timestamps", async () => {
  const root = await freshWorld("resume");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  const all = await readAll(view_dir, source);
  // Resume in the middle of a run of equal timestamps when there is one.
  let cut = all.findIndex((r, i) => i > 100 && all[i + 1]?.position.ts_utc === r.position.ts_utc);
  if (cut < 0) cut = 1500;
  const rest = await readAll(view_dir, source, all[cut].position);
  assert.equal(rest.length, all.length - cut - 1);
  assert.deepEqual(rest.map((r) => r.position), all.slice(cut + 1).map((r) => r.position));
  assert.deepEqual(await readAll(view_dir, source, all[all.length - 1].position), []);
});

Deno.test("the reader fails closed on a missing view, another view's id or another output", async () => {
  const root = await freshWorld("closed");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  const open = (dir: string, streamViewId: string, outputId: string) =>
    runExit(Effect.scoped(openViewReader(dir, { streamViewId, outputId })));
  const id = streamViewId(source);
  assert.equal(failureReason(await open(join(root, "nowhere"), id, OUTPUT)), "STREAM_VIEW_MISSING");
  assert.equal(
    failureReason(await open(view_dir, "f".repeat(64), OUTPUT)),
    "STREAM_VIEW_ID_MISMATCH",
  );
  assert.equal(
    failureReason(await open(view_dir, id, "arrival_events_5B")),
    "STREAM_VIEW_OUTPUT_MISMATCH",
  );
});

Deno.test("an empty view is refused by the reader", async () => {
  const root = await freshWorld("empty");
  const source = await sourceOf(root);
  const { view_dir } = await run(build(source));
  const receiptPath = join(view_dir, "_stream_sort_receipt.json");
  const receipt = JSON.parse(await Deno.readTextFile(receiptPath));
  receipt.sorted_stats.row_count = 0;
  await Deno.writeTextFile(receiptPath, JSON.stringify(receipt));
  const exit = await runExit(Effect.scoped(openViewReader(view_dir, {
    streamViewId: streamViewId(source),
    outputId: OUTPUT,
  })));
  assert.equal(failureReason(exit), "STREAM_VIEW_EMPTY");
});

Deno.test("a view whose source parts changed since the build is refused STREAM_VIEW_STALE, and a repair rebuilds it", async () => {
  const root = await freshWorld("stale");
  const source = await sourceOf(root);
  const first = await run(build(source));
  const receipt = await Deno.readTextFile(join(first.view_dir, "_stream_sort_receipt.json"));
  // Same size, same footer: only the modification time tells this part apart.
  const part = source.parts[0];
  await Deno.utime(part, new Date("2020-01-01T00:00:00Z"), new Date("2020-01-01T00:00:00Z"));
  const exit = await runExit(build(source));
  assert.equal(failureReason(exit), "STREAM_VIEW_STALE");
  assert.match(String(exit), /mtime_utc .* -> 2020-01-01T00:00:00.000Z/);
  assert.equal(
    await Deno.readTextFile(join(first.view_dir, "_stream_sort_receipt.json")),
    receipt,
    "a refused view is left as it was",
  );
  const repaired = await run(build(source, { repair: true }));
  assert.equal(repaired.status, "BUILT");
  assert.equal((await run(build(source))).status, "SKIPPED");
});

Deno.test("a world moved after its views were built keeps them: same id, skipped, readable", async () => {
  const root = await freshWorld("before-move");
  const first = await run(build(await sourceOf(root)));
  const moved = join(base, "after-move");
  await Deno.rename(root, moved);
  const source = await sourceOf(moved);
  const again = await run(build(source));
  assert.equal(again.status, "SKIPPED");
  assert.equal(again.stream_view_id, first.stream_view_id);
  assert.equal((await readAll(again.view_dir, source)).length, 3000);
});

Deno.test("sorted stats that differ from the raw stats fail STREAM_SORT_STATS_MISMATCH naming each stat", async () => {
  const raw = {
    row_count: 3,
    hash_sum: "1",
    hash_sum2: "2",
    min_ts_utc: "2026-01-01T00:00:00.000000Z",
    max_ts_utc: "2026-01-02T00:00:00.000000Z",
  };
  await run(compareStats(OUTPUT, raw, { ...raw }));
  const exit = await runExit(compareStats(OUTPUT, raw, { ...raw, row_count: 2, hash_sum2: "3" }));
  assert.equal(failureReason(exit), "STREAM_SORT_STATS_MISMATCH");
  assert.match(String(exit), /in row_count, hash_sum2/);
});

globalThis.addEventListener("unload", () => Deno.removeSync(base, { recursive: true }));

/**
 * `deno task bench`: the performance targets, measured on this machine in one run and printed
 * as ratios against a baseline measured in the same run (never asserted in tests).
 *
 *   sort:  building a 5M-event stream view vs the bare DuckDB COPY ... ORDER BY   (≤ 1.15x)
 *   seek:  first rows from a position near the end of the 5M-row view              (< 1 s)
 *   rss:   resident memory while seeking/reading stays flat
 *
 * Flags: --events N (default 5,000,000), --dir D (default /tmp/worldstream-bench; the world is
 * kept there between runs), --rounds R (default 2; the best of R is compared).
 */
import { Effect } from "effect";
import { join } from "node:path";
import { parseFlags } from "../cli/args.ts";
import { resolveOutput, resolveWorld } from "../core/world.ts";
import { DuckDb, duckSql, sqlLiteral } from "../stores/duckdb.ts";
import { buildStreamView, streamViewId, viewDir } from "../stores/stream_view_build.ts";
import { openViewReader } from "../stores/stream_view_read.ts";
import { genWorld } from "./gen_world.ts";

const OUTPUT = "s3_event_stream_with_fraud_6B";
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const rss = () => mb(Deno.memoryUsage().rss);
const results: Array<{ target: string; value: string; goal: string; ok: boolean }> = [];

const bench = Effect.gen(function* () {
  const flags = yield* parseFlags(Deno.args, { events: "string", dir: "string", rounds: "string" });
  const events = Number(flags.events ?? 5_000_000);
  const rounds = Number(flags.rounds ?? 2);
  const dir = String(flags.dir ?? "/tmp/worldstream-bench");
  const root = join(dir, `world-${events}`);

  let t = performance.now();
  yield* genWorld({ out: root, events });
  console.log(
    `world: ${events} events at ${root} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  const world = yield* resolveWorld(root, { strict: true, requireGatePass: true });
  const output = yield* resolveOutput(world, OUTPUT);
  const viewRoot = join(dir, `views-${events}`);
  const source = {
    engineRunRoot: world.engineRunRoot,
    engineRunId: world.runReceipt.run_id,
    worldKey: world.worldKey,
    outputId: OUTPUT,
    parts: output.parts,
    streamViewRoot: viewRoot,
  };
  const db = yield* DuckDb;

  // --- sort: the bare statement vs the whole build (stats, sort, checks, atomic publish) ---
  const bareOut = join(dir, "bare.parquet");
  const bareSql = `COPY (SELECT *, filename, file_row_number FROM read_parquet($files)
    ORDER BY ts_utc, filename, file_row_number) TO ${sqlLiteral(bareOut)} (FORMAT parquet)`;
  const bare: number[] = [];
  const ours: number[] = [];
  yield* Effect.scoped(Effect.gen(function* () {
    const s = yield* db.session;
    // Warm the page cache so neither side pays for the first read.
    yield* s.rows(duckSql("parquet_row_count"), { files: output.parts });
    yield* s.rows(`SELECT count(*), max(ts_utc) FROM read_parquet($files)`, {
      files: output.parts,
    });
    for (let i = 0; i < rounds; i++) {
      t = performance.now();
      yield* s.exec(bareSql, { files: output.parts });
      bare.push((performance.now() - t) / 1000);
      yield* Effect.promise(() => Deno.remove(viewRoot, { recursive: true }).catch(() => {}));
      t = performance.now();
      yield* buildStreamView(source);
      ours.push((performance.now() - t) / 1000);
      console.log(
        `sort round ${i + 1}: bare ${bare[i].toFixed(2)} s, worldstream ${ours[i].toFixed(2)} s`,
      );
    }
  }));
  const ratio = Math.min(...ours) / Math.min(...bare);
  results.push({
    target: `sort ${events} rows (best of ${rounds}): ${Math.min(...ours).toFixed(2)} s vs bare ${
      Math.min(...bare).toFixed(2)
    } s`,
    value: `${ratio.toFixed(3)}x`,
    goal: "<= 1.15x",
    ok: ratio <= 1.15,
  });

  // --- seek: first rows after a position 1,000 rows before the end ---
  const vdir = viewDir(viewRoot, OUTPUT);
  const position = yield* Effect.scoped(Effect.gen(function* () {
    const s = yield* db.session;
    const rows = yield* s.rows<{ ts_utc: string; filename: string; file_row_number: bigint }>(
      `SELECT ts_utc, filename, file_row_number FROM read_parquet($files) OFFSET $n LIMIT 1`,
      { files: [join(vdir, "part-00000.parquet")], n: events - 1000 },
    );
    return { seq: events - 1000, ...rows[0], file_row_number: Number(rows[0].file_row_number) };
  }));
  const rssBefore = rss();
  const seek = yield* Effect.scoped(Effect.gen(function* () {
    const start = performance.now();
    const cursor = yield* openViewReader(vdir, {
      streamViewId: streamViewId(world.engineRunRoot, world.worldKey.scenario_id, OUTPUT),
      outputId: OUTPUT,
    }, position);
    const first = yield* cursor.next;
    const firstMs = performance.now() - start;
    let n = first?.length ?? 0;
    for (let b = yield* cursor.next; b !== undefined; b = yield* cursor.next) n += b.length;
    return { firstMs, n, firstSeq: first?.[0]?.position.seq };
  }));
  results.push({
    target: `seek to row ${events - 1000} of ${events}: first rows after`,
    value: `${seek.firstMs.toFixed(0)} ms (${seek.n} rows, first seq ${seek.firstSeq})`,
    goal: "< 1000 ms",
    ok: seek.firstMs < 1000 && seek.n === 999,
  });

  const rssAfterSeek = rss();
  results.push({
    target: `RSS around the seek: before ${rssBefore} MB, after ${rssAfterSeek} MB`,
    value: `${rssAfterSeek - rssBefore} MB growth`,
    goal: "< 64 MB growth",
    ok: rssAfterSeek - rssBefore < 64,
  });

  // --- memory: a long read keeps RSS flat (second half of the read vs the first half) ---
  const readRows = Math.min(events, 1_000_000);
  const samples = yield* Effect.scoped(Effect.gen(function* () {
    const cursor = yield* openViewReader(vdir, {
      streamViewId: streamViewId(world.engineRunRoot, world.worldKey.scenario_id, OUTPUT),
      outputId: OUTPUT,
    });
    const out: number[] = [];
    let n = 0;
    for (let b = yield* cursor.next; b !== undefined && n < readRows; b = yield* cursor.next) {
      n += b.length;
      if (n % 100_000 < b.length) out.push(rss());
    }
    return out;
  }));
  const half = Math.ceil(samples.length / 2);
  const early = Math.max(...samples.slice(0, half));
  const late = Math.max(...samples.slice(half));
  results.push({
    target: `RSS reading ${readRows} rows: ${samples.join("/")} MB`,
    value: `${late - early} MB (late max − early max)`,
    goal: "< 64 MB",
    ok: late - early < 64,
  });
});

await Effect.runPromise(bench.pipe(Effect.provide(DuckDb.layer())));
console.log("\nworldstream bench");
for (const r of results) {
  console.log(
    `${r.ok ? "PASS" : "MISS"}  ${r.value.padEnd(34)} goal ${r.goal.padEnd(16)} ${r.target}`,
  );
}
Deno.exit(results.every((r) => r.ok) ? 0 : 1);

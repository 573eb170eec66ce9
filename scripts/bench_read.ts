/**
 * The reader half of `deno task bench:sort`, in a process of its own: it opens one stream view
 * and reads it (from the start, or from a position), and prints one JSON line with its resident
 * memory. A process that has just sorted millions of rows keeps the gigabytes DuckDB grew to, so
 * the reader's own memory can only be seen in a process that does nothing else.
 *
 * `deno run -A scripts/bench_read.ts --view DIR --stream-view-id ID --output-id O [--rows N]
 * [--after JSON]`: `--after` is a ViewPosition (the last row already handled); `--rows` stops
 * after N rows. Prints `{rows, first_ms, start_mb, samples_mb, peak_mb}`: RSS before opening the
 * view, RSS every 100,000 rows, and the process's peak RSS (Linux VmHWM).
 */
import { Effect } from "effect";
import { parseFlags, requireFlag } from "../cli/args.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { openViewReader, type ViewPosition } from "../stores/stream_view_read.ts";

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

/** The process's peak resident set in MB (VmHWM), or its current RSS where /proc is missing. */
function peakMb(): number {
  try {
    const kb = /VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1];
    if (kb !== undefined) return Math.round(Number(kb) / 1024);
  } catch {
    // not Linux
  }
  return mb(Deno.memoryUsage().rss);
}

const program = Effect.gen(function* () {
  const flags = yield* parseFlags(Deno.args, {
    view: "string",
    "stream-view-id": "string",
    "output-id": "string",
    rows: "string",
    after: "string",
  });
  const view = yield* requireFlag(flags, "view");
  const streamViewId = yield* requireFlag(flags, "stream-view-id");
  const outputId = yield* requireFlag(flags, "output-id");
  const limit = flags.rows === undefined ? Infinity : Number(flags.rows);
  const after = typeof flags.after === "string"
    ? JSON.parse(flags.after) as ViewPosition
    : undefined;
  const startMb = mb(Deno.memoryUsage().rss);
  return yield* Effect.scoped(Effect.gen(function* () {
    const t0 = performance.now();
    const cursor = yield* openViewReader(view, { streamViewId, outputId }, after);
    const samples: number[] = [];
    let firstMs: number | undefined;
    let rows = 0;
    for (let b = yield* cursor.next; b !== undefined && rows < limit; b = yield* cursor.next) {
      firstMs ??= performance.now() - t0;
      rows += b.length;
      if (rows % 100_000 < b.length) samples.push(mb(Deno.memoryUsage().rss));
    }
    return {
      rows,
      first_ms: firstMs ?? performance.now() - t0,
      start_mb: startMb,
      samples_mb: samples,
      peak_mb: peakMb(),
    };
  }));
});

const result = await Effect.runPromise(program.pipe(Effect.provide(DuckDb.layer())));
console.log(JSON.stringify(result));

/**
 * Live progress of long commands (`run`, `stream`, `sort`, `replay`): per item (an output) a bar,
 * the count, the rate and an ETA, redrawn in place on stderr when it is a terminal, and otherwise
 * one JSON log line per item every few seconds (`output progress`), so pipes, containers and CI
 * logs get JSON lines and nothing else.
 *
 * {@link withProgress} wraps any effect given a source of {@link ProgressItem}s; the rendering
 * ({@link progressLine}, {@link RateMeter}) is pure, so it is tested without a terminal.
 */
import { Clock, Config, Effect, Fiber, Schedule } from "effect";
import { fail } from "../schemas/errors.ts";

/** One item's progress as its source reports it. */
export interface ProgressItem {
  /** What is progressing (an output id). */
  readonly id: string;
  readonly done: number;
  /** 0 when unknown. */
  readonly total: number;
  /** Shown after the ETA on a terminal (e.g. `adm 9000 dup 0`). */
  readonly detail?: string;
}

/** An item with its rate and ETA. */
export interface ProgressRow extends ProgressItem {
  /** Per second over the last few seconds; 0 before two samples. */
  readonly rate: number;
  /** Seconds left at that rate; undefined when it cannot be told. */
  readonly etaSeconds: number | undefined;
}

const BAR = 20;
const LABEL = 30;

/** Rates over a sliding window of samples, per item. */
export class RateMeter {
  private readonly samples = new Map<string, Array<readonly [number, number]>>();
  constructor(private readonly windowMs = 5000) {}

  /** Records `items` at `nowMs` and answers them with their rate and ETA. */
  observe(items: ReadonlyArray<ProgressItem>, nowMs: number): Array<ProgressRow> {
    return items.map((item) => {
      let s = this.samples.get(item.id);
      if (s === undefined || (s.length > 0 && item.done < s[s.length - 1][1])) {
        // New, or started again (a new run of the same output): forget the old samples.
        s = [];
        this.samples.set(item.id, s);
      }
      s.push([nowMs, item.done]);
      while (s.length > 2 && nowMs - s[1][0] >= this.windowMs) s.shift();
      const [t0, d0] = s[0];
      const rate = nowMs > t0 ? ((item.done - d0) * 1000) / (nowMs - t0) : 0;
      const left = item.total - item.done;
      const etaSeconds = item.total > 0 && left <= 0
        ? 0
        : item.total > 0 && rate > 0
        ? left / rate
        : undefined;
      return { ...item, rate, etaSeconds };
    });
  }
}

/** `1:05`, `2:03:09`, or `--:--` when unknown. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !isFinite(seconds)) return "--:--";
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** `name ████░░ 45% 9,000/20,000 3,100/s ETA 0:04 detail` — one item's terminal line. */
export function progressLine(row: ProgressRow): string {
  const pct = row.total > 0 ? Math.min(100, (row.done / row.total) * 100) : 0;
  const filled = Math.round((pct / 100) * BAR);
  const count = row.total > 0
    ? `${row.done.toLocaleString("en")}/${row.total.toLocaleString("en")}`
    : row.done.toLocaleString("en");
  return [
    row.id.padEnd(LABEL),
    "█".repeat(filled) + "░".repeat(BAR - filled),
    `${pct.toFixed(0).padStart(3)}%`,
    count,
    `${Math.round(row.rate).toLocaleString("en")}/s`,
    `ETA ${formatEta(row.etaSeconds)}`,
    ...(row.detail ? [row.detail] : []),
  ].join(" ");
}

/**
 * The bytes that redraw a block of `lines` over the `drawn` lines drawn before it: cursor up to
 * the block's first line, each line cleared and rewritten.
 */
export function redraw(lines: ReadonlyArray<string>, drawn: number): string {
  const up = drawn > 0 ? `\x1b[${drawn}F` : "";
  return `${up}${lines.map((l) => `\x1b[2K${l}`).join("\n")}\n`;
}

/** The annotations of a non-terminal progress line. */
export function progressFields(row: ProgressRow): Record<string, string | number | null> {
  return {
    output_id: row.id,
    done: row.done,
    total: row.total,
    percent: row.total > 0 ? Math.round((row.done / row.total) * 1000) / 10 : null,
    rate_per_s: Math.round(row.rate),
    eta_s: row.etaSeconds === undefined ? null : Math.ceil(row.etaSeconds),
  };
}

/** How {@link withProgress} shows progress. */
export interface ProgressOptions<A> {
  /** Redraw in place (default: whether stderr is a terminal). */
  readonly tty?: boolean;
  /**
   * The final items from the effect's result and the last items seen (a source may be empty
   * once the work is over, and the last items a moment old); default the last items seen.
   */
  readonly final?: (
    result: A,
    last: ReadonlyArray<ProgressItem>,
  ) => ReadonlyArray<ProgressItem>;
}

/**
 * Milliseconds between non-terminal progress lines: `WORLDSTREAM_PROGRESS_EVERY_MS`, default
 * 5000; a value that is not a whole number of at least 100 fails BAD_ENV.
 */
export const progressEveryMs = Config.Int("WORLDSTREAM_PROGRESS_EVERY_MS").pipe(
  Config.withDefault(5000),
  Effect.mapError(() =>
    fail("BAD_ENV", "WORLDSTREAM_PROGRESS_EVERY_MS must be a whole number of milliseconds")
  ),
  Effect.filterOrFail(
    (ms) => ms >= 100,
    (ms) => fail("BAD_ENV", `WORLDSTREAM_PROGRESS_EVERY_MS must be at least 100, got ${ms}`),
  ),
);

const encoder = new TextEncoder();

/**
 * Runs `effect` while `source`'s items are shown: redrawn every 250 ms on a terminal, logged every
 * {@link progressEveryMs} otherwise, and once more when the effect ends.
 */
export function withProgress<A, E, R, R2>(
  source: Effect.Effect<ReadonlyArray<ProgressItem>, never, R2>,
  effect: Effect.Effect<A, E, R>,
  options: ProgressOptions<A> = {},
) {
  return Effect.gen(function* () {
    const everyMs = yield* progressEveryMs;
    const tty = options.tty ?? Deno.stderr.isTerminal();
    const meter = new RateMeter();
    let last: ReadonlyArray<ProgressItem> = [];
    let drawn = 0;
    const show = (items: ReadonlyArray<ProgressItem>) =>
      Effect.gen(function* () {
        if (items.length === 0) return;
        const rows = meter.observe(items, yield* Clock.currentTimeMillis);
        if (tty) {
          Deno.stderr.writeSync(encoder.encode(redraw(rows.map(progressLine), drawn)));
          drawn = rows.length;
          return;
        }
        for (const row of rows) {
          yield* Effect.logInfo("output progress").pipe(Effect.annotateLogs(progressFields(row)));
        }
      });
    const tick = source.pipe(
      Effect.tap((items) => Effect.sync(() => void (items.length > 0 && (last = items)))),
      Effect.flatMap(show),
    );
    const painter = yield* Effect.forkChild(
      tick.pipe(
        Effect.repeat(Schedule.spaced(tty ? "250 millis" : `${everyMs} millis`)),
        Effect.delay(tty ? "0 millis" : `${everyMs} millis`),
      ),
    );
    const result = yield* effect.pipe(Effect.onExit(() => Fiber.interrupt(painter)));
    const now = yield* source;
    const seen = now.length > 0 ? now : last;
    yield* show(options.final ? options.final(result, seen) : seen);
    return result;
  });
}

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal, so pipes and CI logs
 * get JSON lines and nothing else.
 */
import { Effect } from "effect";

/** A labelled bar that redraws in place; `done` ends its line. */
export interface ProgressBar {
  readonly update: (percentage: number) => Effect.Effect<void>;
  readonly done: Effect.Effect<void>;
}

const WIDTH = 30;
const encoder = new TextEncoder();

/** A bar for `label`, or a no-op when stderr is not a terminal. */
export function progressBar(label: string): ProgressBar {
  if (!Deno.stderr.isTerminal()) return { update: () => Effect.void, done: Effect.void };
  let last = -1;
  const draw = (pct: number) => {
    const p = Math.min(100, Math.max(0, Math.floor(pct)));
    if (p === last) return;
    last = p;
    const filled = Math.round((p / 100) * WIDTH);
    const bar = "█".repeat(filled) + "░".repeat(WIDTH - filled);
    Deno.stderr.writeSync(encoder.encode(`\r${bar} ${String(p).padStart(3)}% ${label}`));
  };
  return {
    update: (pct) => Effect.sync(() => draw(pct)),
    done: Effect.sync(() => {
      draw(100);
      Deno.stderr.writeSync(encoder.encode("\n"));
    }),
  };
}

/** A block of status lines redrawn in place on stderr (nothing when not a terminal). */
export interface StatusBlock {
  readonly draw: (lines: ReadonlyArray<string>) => Effect.Effect<void>;
  readonly end: Effect.Effect<void>;
}

/** A status block for live per-output progress. */
export function statusBlock(): StatusBlock {
  if (!Deno.stderr.isTerminal()) return { draw: () => Effect.void, end: Effect.void };
  let drawn = 0;
  return {
    draw: (lines) =>
      Effect.sync(() => {
        const up = drawn > 0 ? `\x1b[${drawn}F` : "";
        const body = lines.map((l) => `\x1b[2K${l}`).join("\n");
        Deno.stderr.writeSync(encoder.encode(`${up}${body}\n`));
        drawn = lines.length;
      }),
    end: Effect.sync(() => {
      drawn = 0;
    }),
  };
}

/** `name ████░░ 45% 9,000/20,000` — one output's line. */
export function barLine(label: string, done: number, total: number, extra = ""): string {
  const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100;
  const filled = Math.round((pct / 100) * 20);
  return `${label.padEnd(30)} ${"█".repeat(filled)}${"░".repeat(20 - filled)} ${
    pct.toFixed(0).padStart(3)
  }% ${done.toLocaleString("en")}/${total.toLocaleString("en")} ${extra}`;
}

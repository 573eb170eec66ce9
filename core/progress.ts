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

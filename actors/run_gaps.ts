/**
 * The run's idle gaps, shared by all its outputs, for `max_gap` pacing.
 *
 * `max_gap` compresses a stretch of event time in which nothing happens, so a replay does not
 * sit idle for hours. It must be compressed once for the whole run: if each output compressed
 * its own idle gaps, two outputs with different gaps would drift apart in event time (an event
 * of one output at 10:00 would be due long before the other output's event at 10:00). So a gap
 * is compressed only where *no* output of the run has an event, and every output shifts its due
 * times by the same amount: the run's shift at event time t is the sum, over the run's idle
 * gaps before t longer than max_gap, of what exceeds max_gap.
 *
 * Each output publishes, chunk by chunk as it reads its view, its own gaps longer than max_gap
 * (only those matter: an idle stretch of the run longer than max_gap lies inside such a gap of
 * every output) and how far its reading has got. An output that meets a long gap of its own
 * asks what the run's idle time inside it is; for that, every other output must have read past
 * the gap's end, so it may wait for them (on the earliest pending gap nobody waits, so this
 * never deadlocks). Everywhere else, the hot path, nothing is shared: an output whose events
 * are closer than max_gap keeps its shift, since no run gap longer than max_gap can lie between
 * two of its events.
 */
import { Deferred, Effect } from "effect";

/** Above this many stored numbers, an output's list drops the gaps nobody can ask about. */
const TRIM_AT = 4096;

/** One output's side of the run's gaps. */
export interface OutputGaps {
  /** Publishes the event times of a chunk just read (in view order). */
  readonly read: (tsMicros: ReadonlyArray<number>) => void;
  /** This output reads no further (end of view, cap, stop or failure). Idempotent. */
  readonly end: () => void;
  /**
   * What max_gap compresses (µs of event time) between two consecutive events of this output at
   * `fromUs` and `toUs`, which must lie more than max_gap apart; waits until every other output
   * has read through `toUs`.
   */
  readonly compression: (fromUs: number, toUs: number) => Effect.Effect<number>;
}

/** The idle gaps of a run of `outputs` outputs whose first event is at `t0Us`. */
export class RunGaps {
  /** Per output: gaps longer than max_gap as flat [start, end, start, end, ...] (sorted). */
  private readonly gaps: Array<Array<number>>;
  /** Per output: the last event time published (t0 before the first chunk). */
  private readonly last: Float64Array;
  /** Per output: every later question it asks starts at or after this (its previous chunk's end). */
  private readonly floor: Float64Array;
  private readonly ended: Array<boolean>;
  private waiters = 0;
  private wake = Deferred.makeUnsafe<void>();

  constructor(
    readonly outputs: number,
    readonly t0Us: number,
    /** max_gap in event time (max_gap wall seconds × speedup), µs. */
    readonly maxGapUs: number,
  ) {
    this.gaps = Array.from({ length: outputs }, () => []);
    this.last = new Float64Array(outputs).fill(t0Us);
    this.floor = new Float64Array(outputs).fill(t0Us);
    this.ended = Array.from({ length: outputs }, () => false);
  }

  /** Output `k`'s handle. */
  output(k: number): OutputGaps {
    return {
      read: (tsMicros) => this.read(k, tsMicros),
      end: () => this.end(k),
      compression: (fromUs, toUs) => this.compression(k, fromUs, toUs),
    };
  }

  private read(k: number, tsMicros: ReadonlyArray<number>) {
    if (this.ended[k] || tsMicros.length === 0) return;
    const list = this.gaps[k];
    let last = this.last[k];
    this.floor[k] = last;
    for (let i = 0; i < tsMicros.length; i++) {
      const ts = tsMicros[i];
      if (ts - last > this.maxGapUs) list.push(last, ts);
      last = ts;
    }
    this.last[k] = last;
    if (list.length > TRIM_AT) this.trim(k);
    this.notify();
  }

  private end(k: number) {
    if (this.ended[k]) return;
    this.ended[k] = true;
    // Idle from its last event on, for good.
    this.gaps[k].push(this.last[k], Infinity);
    this.last[k] = Infinity;
    this.floor[k] = Infinity;
    this.notify();
  }

  private compression(k: number, fromUs: number, toUs: number): Effect.Effect<number> {
    return Effect.suspend(() => {
      if (this.readThrough(k, toUs)) return Effect.succeed(this.idleExcess(k, fromUs, toUs));
      this.waiters++;
      return Deferred.await(this.wake).pipe(
        Effect.ensuring(Effect.sync(() => void this.waiters--)),
        Effect.andThen(this.compression(k, fromUs, toUs)),
      );
    });
  }

  /** Whether every output but `k` has read through `ts` (so its events up to `ts` are known). */
  private readThrough(k: number, ts: number): boolean {
    for (let j = 0; j < this.outputs; j++) if (j !== k && this.last[j] < ts) return false;
    return true;
  }

  /** The run's idle time inside (from, to) in stretches longer than max_gap, minus max_gap each. */
  private idleExcess(k: number, from: number, to: number): number {
    let idle = [from, to];
    for (let j = 0; j < this.outputs && idle.length > 0; j++) {
      if (j === k) continue;
      const list = this.gaps[j];
      const next: Array<number> = [];
      for (let g = firstEndingAfter(list, from); g < list.length && list[g] < to; g += 2) {
        for (let a = 0; a < idle.length; a += 2) {
          const start = Math.max(idle[a], list[g]);
          const end = Math.min(idle[a + 1], list[g + 1]);
          if (end > start) next.push(start, end);
        }
      }
      idle = next;
    }
    let excess = 0;
    for (let a = 0; a < idle.length; a += 2) {
      const length = idle[a + 1] - idle[a];
      if (length > this.maxGapUs) excess += length - this.maxGapUs;
    }
    return excess;
  }

  /** Drops output `k`'s gaps that end before any other output's next question can start. */
  private trim(k: number) {
    let floor = Infinity;
    for (let j = 0; j < this.outputs; j++) if (j !== k) floor = Math.min(floor, this.floor[j]);
    const list = this.gaps[k];
    const drop = firstEndingAfter(list, floor);
    if (drop > 0) list.splice(0, drop);
  }

  private notify() {
    if (this.waiters === 0) return;
    const woken = this.wake;
    this.wake = Deferred.makeUnsafe<void>();
    Deferred.doneUnsafe(woken, Effect.void);
  }
}

/** Index of the first gap in a flat [start, end, ...] list whose end is after `t`. */
function firstEndingAfter(list: ReadonlyArray<number>, t: number): number {
  let lo = 0;
  let hi = list.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[2 * mid + 1] <= t) lo = mid + 1;
    else hi = mid;
  }
  return 2 * lo;
}

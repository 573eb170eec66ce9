/**
 * Budget arithmetic with no clock and no I/O (actors/budgets.ts applies it to a run): which
 * budgets a run, output or principal falls under, token buckets that say how much may go now and
 * how long to wait for more, how many of a group's events fit under hard caps, and the usage the
 * budget ledger holds, summed per scope. Kept pure so every rule is testable without a stream.
 */
import type { Budget, BudgetScope } from "../schemas/profile.ts";

/** `*` matches every id, `prefix*` every id starting with prefix, anything else itself. */
export function budgetMatches(pattern: string, id: string): boolean {
  if (pattern === "*") return true;
  return pattern.endsWith("*") ? id.startsWith(pattern.slice(0, -1)) : id === pattern;
}

/** What a run is, for budget matching: its ids at each scope. */
export interface BudgetSubject {
  /** Matched by `scope: run` (the platform run id). */
  readonly platformRunId: string;
  /** Matched by `scope: principal` (e.g. `svc:world_stream_producer`). */
  readonly principal: string;
}

/** The id a budget of `scope` is matched against, for one output of a run. */
export function subjectId(scope: BudgetScope, subject: BudgetSubject, outputId: string): string {
  return scope === "run"
    ? subject.platformRunId
    : scope === "principal"
    ? subject.principal
    : outputId;
}

/** Whether a budget has a hard cap (and so is charged to the ledger). */
export function hasCap(budget: Budget): boolean {
  return budget.max_events !== undefined || budget.max_bytes !== undefined;
}

/** Whether a budget has a rate (and so paces). */
export function hasRate(budget: Budget): boolean {
  return budget.events_per_second !== undefined || budget.bytes_per_second !== undefined;
}

/** UTF-8 length of a string, without encoding it. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * A token bucket of `rate` tokens a second holding at most `capacity` (one second's worth, and
 * never less than 1), full at first. `take` answers how many of the units asked for may go now;
 * `waitMs` how long until the next unit may. Shared by several streams, it is fair as long as
 * each takes and waits in turn: taking is synchronous.
 */
export class TokenBucket {
  readonly capacity: number;
  private tokens: number;
  private lastMs: number | undefined;

  constructor(readonly rate: number) {
    this.capacity = Math.max(rate, 1);
    this.tokens = this.capacity;
  }

  private refill(nowMs: number): void {
    if (this.lastMs !== undefined && nowMs > this.lastMs) {
      this.tokens = Math.min(this.capacity, this.tokens + (nowMs - this.lastMs) * this.rate / 1000);
    }
    if (this.lastMs === undefined || nowMs > this.lastMs) this.lastMs = nowMs;
  }

  /** Whole units available now. */
  available(nowMs: number): number {
    this.refill(nowMs);
    return Math.floor(this.tokens + 1e-9);
  }

  /** Takes `units` (at most what is available, or a whole oversized unit from a full bucket). */
  take(nowMs: number, units: number): void {
    this.refill(nowMs);
    this.tokens -= units;
  }

  /** Whether the bucket is full (an oversized unit may then go alone, leaving a debt). */
  full(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.capacity - 1e-9;
  }

  /** Milliseconds until `units` are available (whole, rounded up; 0 when they are). */
  waitMs(nowMs: number, units: number): number {
    this.refill(nowMs);
    const want = Math.min(units, this.capacity);
    return this.tokens + 1e-9 >= want ? 0 : Math.ceil((want - this.tokens) * 1000 / this.rate);
  }
}

/** How many of `sizes` (in order) fit in `limit`: the longest prefix whose sum is at most it. */
export function prefixWithin(sizes: ReadonlyArray<number>, limit: number): number {
  let sum = 0;
  for (let i = 0; i < sizes.length; i++) {
    sum += sizes[i];
    if (sum > limit) return i;
  }
  return sizes.length;
}

/** One ledger row, summed: what one output of one run of one principal consumed of a metric. */
export interface UsageRow {
  readonly principal: string;
  readonly runKey: string | null;
  readonly outputId: string | null;
  readonly metric: string;
  readonly amount: number;
  /** The last view sequence charged (re-sends up to it are free), when the row says. */
  readonly seqTo: number | null;
}

/** Events and bytes consumed. */
export interface Usage {
  readonly events: number;
  readonly bytes: number;
}

/** What `rows` add up to for a scope: one output of a run, a run, or a principal. */
export function usageOf(
  rows: ReadonlyArray<UsageRow>,
  scope: BudgetScope,
  at: { readonly runKey: string; readonly outputId: string; readonly principal: string },
): Usage {
  let events = 0;
  let bytes = 0;
  for (const r of rows) {
    const inScope = scope === "principal"
      ? r.principal === at.principal
      : scope === "run"
      ? r.runKey === at.runKey
      : r.runKey === at.runKey && r.outputId === at.outputId;
    if (!inScope) continue;
    if (r.metric === "events") events += r.amount;
    else if (r.metric === "bytes") bytes += r.amount;
  }
  return { events, bytes };
}

/** The last view sequence already charged for one output of a run (-1: none). */
export function chargedTo(
  rows: ReadonlyArray<UsageRow>,
  runKey: string,
  outputId: string,
): number {
  let seq = -1;
  for (const r of rows) {
    if (r.runKey === runKey && r.outputId === outputId && r.seqTo !== null && r.seqTo > seq) {
      seq = r.seqTo;
    }
  }
  return seq;
}

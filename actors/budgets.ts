/**
 * The budgets of a run (`governance.budgets`, ARCHITECTURE section 6), applied where an output's
 * streamer hands events to its lane: the one point every event passes before it can reach the
 * gate. Rates pace: a token bucket per budget (events/s, bytes/s) makes the hand-over wait, on
 * the Effect Clock, on top of the speedup pacing. Hard caps stop: a hand-over is cut to exactly
 * what still fits, the cut is charged to the budget ledger through the WAL before the events go
 * (so a crash or a restart never resets a cap), and the output ends BUDGET_EXCEEDED with a
 * `budget_exceeded` receipt. Events re-sent after a crash (up to the last sequence already
 * charged for the output) are not charged twice.
 *
 * Budgets of scope `run` and `principal` are shared by every output of the run; a principal's
 * caps add up across runs through the ledger, its rate bucket lives as long as the run.
 */
import { Clock, Deferred, Effect } from "effect";
import {
  budgetMatches,
  type BudgetSubject,
  chargedTo,
  hasCap,
  hasRate,
  prefixWithin,
  subjectId,
  TokenBucket,
  type Usage,
  usageOf,
  type UsageRow,
  utf8Length,
} from "../core/budget.ts";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { Budget } from "../schemas/profile.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { loadBudgetUsage } from "../stores/budget_ledger.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import { type BudgetBody, type WalRecord, walRecord } from "../stores/wal_records.ts";
import { Journal } from "./journal.ts";
import { RunConfig } from "./run_config.ts";
import { Wal } from "./wal/writer.ts";

/** Waits up to this long are slept out; longer ones race the stop request. */
const SHORT_WAIT_MS = 50;

/** The capability a stream's budget is spent on (named in receipts). */
const ACTION = "wsp.stream";

/** What a hand-over may do: its first `granted` events go; `end` says the output must stop. */
export interface Admission {
  readonly granted: number;
  readonly end?: "budget" | "shutdown";
  /** With `end: "budget"`: which cap, how much was used, what was refused. */
  readonly message?: string;
}

/** One output's side of the run's budgets (the hook its streamer calls before each hand-over). */
export interface OutputBudget {
  /**
   * Asks to hand over `count` events of `envelopes` from index `from`: waits for rate tokens
   * (or a stop request), charges the cap budgets durably, and answers how many of them may go.
   * Fewer than asked without `end` means "hand these over, then ask again for the rest".
   */
  readonly admit: (
    envelopes: ReadonlyArray<string>,
    positions: ReadonlyArray<ViewPosition>,
    from: number,
    count: number,
  ) => Effect.Effect<Admission, WorldstreamError>;
}

/** The budgets of one run. */
export interface RunBudgets {
  /** The hook of one output, or `undefined` when no budget applies to it. */
  readonly output: (outputId: string) => OutputBudget | undefined;
}

/** Who a run is, for budgets. */
export interface RunBudgetSubject extends BudgetSubject {
  /** The run's checkpoint scope (its ledger rows carry it). */
  readonly runKey: string;
}

interface CapState {
  readonly index: number;
  readonly budget: Budget;
  /** Consumed in the budget's scope (mutated as the run charges it). */
  readonly used: { events: number; bytes: number };
}

interface RateState {
  readonly events?: TokenBucket;
  readonly bytes?: TokenBucket;
}

/**
 * The run's budgets from the profile: loads what the ledger (Postgres and the undrained WAL) says
 * was consumed when a hard cap applies; `undefined` when no budget applies to any output.
 * Postgres must answer for a capped run: a cap is never applied to a guessed total.
 */
export const openRunBudgets = Effect.fn("openRunBudgets")(function* (
  subject: RunBudgetSubject,
  outputIds: ReadonlyArray<string>,
  stop: Deferred.Deferred<void>,
) {
  const { profile } = yield* RunConfig;
  const budgets = profile.governance.budgets ?? [];
  const applies = (b: Budget) =>
    outputIds.some((o) => budgetMatches(b.match, subjectId(b.scope, subject, o)));
  if (!budgets.some(applies)) return undefined;
  const capped = budgets.some((b) => applies(b) && hasCap(b));
  const usage = capped ? yield* loadBudgetLedger(subject) : [];
  const journal = capped ? yield* Journal : undefined;
  return makeRunBudgets({ subject, budgets, usage, stop, ...(journal ? { journal } : {}) });
});

/** What the ledger holds for the run and its principal: Postgres plus the undrained WAL. */
export const loadBudgetLedger = Effect.fn("loadBudgetLedger")(
  function* (subject: RunBudgetSubject) {
    // The WAL first, then Postgres without those rows: a row drained in between is counted once.
    const pending = (yield* (yield* Wal).pending).filter((r) => r.kind === "budget");
    const fromWal = pending.map((r) => usageRow(r)).filter((r) =>
      r.principal === subject.principal || r.runKey === subject.runKey
    );
    const stored = yield* loadBudgetUsage(
      subject.principal,
      subject.runKey,
      pending.map((r) => r.record_id),
    ).pipe(
      Effect.mapError((e) =>
        e.reason === "PG_UNAVAILABLE"
          ? fail(
            "PG_UNAVAILABLE",
            `The budget ledger is in Postgres, which did not answer: a run under a hard cap does ` +
              `not start without knowing what was consumed (${e.message})`,
          )
          : e
      ),
    );
    return [...stored, ...fromWal];
  },
);

function usageRow(record: WalRecord): UsageRow {
  const body = record.body as unknown as BudgetBody;
  const seqTo = body.detail?.seq_to;
  return {
    principal: body.principal,
    runKey: body.run_key ?? null,
    outputId: body.output_id ?? null,
    metric: body.metric,
    amount: body.amount,
    seqTo: typeof seqTo === "number" ? seqTo : null,
  };
}

/**
 * The run's budgets over consumption already known (`usage`). `journal` is where charges go; it
 * is needed only when a budget has a hard cap.
 */
export function makeRunBudgets(options: {
  readonly subject: RunBudgetSubject;
  readonly budgets: ReadonlyArray<Budget>;
  readonly usage: ReadonlyArray<UsageRow>;
  readonly stop: Deferred.Deferred<void>;
  readonly journal?: Journal["Service"];
}): RunBudgets {
  const { subject, budgets, usage, stop, journal } = options;
  // Run and principal budgets are one state for all outputs; output budgets one per output.
  const caps = new Map<string, CapState>();
  const rates = new Map<string, RateState>();
  const keyOf = (index: number, outputId: string) =>
    budgets[index].scope === "output" ? `${index}|${outputId}` : `${index}`;
  const at = (outputId: string) => ({
    runKey: subject.runKey,
    outputId,
    principal: subject.principal,
  });

  return {
    output: (outputId) => {
      const myCaps: Array<CapState> = [];
      const myRates: Array<RateState> = [];
      budgets.forEach((budget, index) => {
        if (!budgetMatches(budget.match, subjectId(budget.scope, subject, outputId))) return;
        const key = keyOf(index, outputId);
        if (hasCap(budget)) {
          let state = caps.get(key);
          if (state === undefined) {
            state = { index, budget, used: { ...usageOf(usage, budget.scope, at(outputId)) } };
            caps.set(key, state);
          }
          myCaps.push(state);
        }
        if (hasRate(budget)) {
          let state = rates.get(key);
          if (state === undefined) {
            state = {
              ...(budget.events_per_second === undefined
                ? {}
                : { events: new TokenBucket(budget.events_per_second) }),
              ...(budget.bytes_per_second === undefined
                ? {}
                : { bytes: new TokenBucket(budget.bytes_per_second) }),
            };
            rates.set(key, state);
          }
          myRates.push(state);
        }
      });
      if (myCaps.length === 0 && myRates.length === 0) return undefined;
      if (myCaps.length > 0 && journal === undefined) {
        throw new Error("makeRunBudgets: a hard cap needs a journal to charge");
      }
      return outputBudget({
        subject,
        outputId,
        caps: myCaps,
        rates: myRates,
        own: { ...usageOf(usage, "output", at(outputId)) },
        chargedTo: chargedTo(usage, subject.runKey, outputId),
        stop,
        ...(journal ? { journal } : {}),
      });
    },
  };
}

function outputBudget(state: {
  readonly subject: RunBudgetSubject;
  readonly outputId: string;
  readonly caps: ReadonlyArray<CapState>;
  readonly rates: ReadonlyArray<RateState>;
  /** This output's own consumption in this run (the ledger rows' running totals). */
  readonly own: { events: number; bytes: number };
  /** The last view sequence charged: re-sends up to it are free. */
  chargedTo: number;
  readonly stop: Deferred.Deferred<void>;
  readonly journal?: Journal["Service"];
}): OutputBudget {
  const { caps, rates, subject, outputId } = state;
  const needBytes = caps.length > 0 || rates.some((r) => r.bytes !== undefined);

  /** How many of the events (sized `sizes`) the buckets let go now, or how long to wait. */
  const fromBuckets = (nowMs: number, count: number, sizes: ReadonlyArray<number>) => {
    let allowed = count;
    let waitMs = 0;
    for (const r of rates) {
      if (r.events) {
        const n = r.events.available(nowMs);
        if (n < 1) waitMs = Math.max(waitMs, r.events.waitMs(nowMs, 1));
        allowed = Math.min(allowed, n);
      }
      if (r.bytes) {
        let n = prefixWithin(sizes, r.bytes.available(nowMs));
        // An event larger than the whole bucket goes alone once it is full (a debt).
        if (n === 0 && r.bytes.full(nowMs)) n = 1;
        if (n === 0) waitMs = Math.max(waitMs, r.bytes.waitMs(nowMs, sizes[0]));
        allowed = Math.min(allowed, n);
      }
    }
    return { allowed, waitMs: Math.max(waitMs, 1) };
  };

  const take = (nowMs: number, n: number, sizes: ReadonlyArray<number>) => {
    const bytes = sum(sizes, 0, n);
    for (const r of rates) {
      r.events?.take(nowMs, n);
      r.bytes?.take(nowMs, bytes);
    }
  };

  /** The cut of `k` events by the hard caps, charged in memory at once (no other fiber between). */
  const cut = (
    positions: ReadonlyArray<ViewPosition>,
    from: number,
    k: number,
    sizes: ReadonlyArray<number>,
  ) => {
    let free = 0;
    while (free < k && positions[from + free].seq <= state.chargedTo) free++;
    let granted = k;
    let hit: { cap: CapState; metric: "events" | "bytes" } | undefined;
    for (const cap of caps) {
      const { max_events, max_bytes } = cap.budget;
      const byEvents = max_events === undefined
        ? k - free
        : Math.min(k - free, Math.max(0, max_events - cap.used.events));
      const byBytes = max_bytes === undefined
        ? k - free
        : prefixWithin(sizes.slice(free, k), Math.max(0, max_bytes - cap.used.bytes));
      const n = free + Math.min(byEvents, byBytes);
      if (n < granted) {
        granted = n;
        hit = { cap, metric: byEvents <= byBytes ? "events" : "bytes" };
      }
    }
    const events = granted - free;
    const bytes = sum(sizes, free, granted);
    for (const cap of caps) {
      cap.used.events += events;
      cap.used.bytes += bytes;
    }
    state.own.events += events;
    state.own.bytes += bytes;
    const seqFrom = events > 0 ? positions[from + free].seq : undefined;
    if (events > 0) state.chargedTo = positions[from + granted - 1].seq;
    return {
      granted,
      events,
      bytes,
      seqFrom,
      seqTo: events > 0 ? state.chargedTo : undefined,
      hit: hit
        ? {
          ...hit,
          refused: { events: k - granted, bytes: sum(sizes, granted, k) },
          nextSeq: positions[from + granted].seq,
        }
        : undefined,
    };
  };

  return {
    admit: (envelopes, positions, from, count) =>
      Effect.gen(function* () {
        const sizes = needBytes
          ? envelopes.slice(from, from + count).map(utf8Length)
          : [] as ReadonlyArray<number>;
        let k = count;
        if (rates.length > 0) {
          while (true) {
            const nowMs = yield* Clock.currentTimeMillis;
            const { allowed, waitMs } = fromBuckets(nowMs, count, sizes);
            if (allowed >= 1) {
              take(nowMs, allowed, sizes);
              k = allowed;
              break;
            }
            if (yield* sleepOrStop(waitMs, state.stop)) return { granted: 0, end: "shutdown" };
          }
        }
        if (caps.length === 0) return { granted: k };
        const charge = cut(positions, from, k, sizes);
        const at = yield* state.journal!.now;
        const records = charge.events > 0 ? ledgerRows(state, charge, at) : [];
        if (charge.hit === undefined) {
          if (records.length > 0) yield* state.journal!.append(records);
          return { granted: charge.granted };
        }
        const exceeded = exceededRecord(state, charge.hit, at);
        yield* state.journal!.append([...records, exceeded.record], [exceeded.receipt]);
        yield* Effect.logWarning("budget_exceeded").pipe(Effect.annotateLogs({
          run_key: subject.runKey,
          output_id: outputId,
          ...exceeded.receipt.detail,
        }));
        return { granted: charge.granted, end: "budget", message: exceeded.receipt.rationale };
      }),
  };
}

/** What one hand-over charged: events and bytes, over view sequences seqFrom..seqTo. */
interface Charge {
  readonly events: number;
  readonly bytes: number;
  readonly seqFrom: number | undefined;
  readonly seqTo: number | undefined;
}

/** The ledger rows of a charge: events and bytes, each with the output's running total. */
function ledgerRows(
  state: {
    readonly subject: RunBudgetSubject;
    readonly outputId: string;
    readonly caps: ReadonlyArray<CapState>;
    readonly own: Usage;
  },
  charge: Charge,
  at: Date,
): Array<WalRecord> {
  const { subject, outputId } = state;
  return (["events", "bytes"] as const).map((metric) => {
    const caps = state.caps.flatMap((c) => {
      const cap = metric === "events" ? c.budget.max_events : c.budget.max_bytes;
      return cap === undefined ? [] : [cap];
    });
    const body: BudgetBody = {
      principal: subject.principal,
      run_key: subject.runKey,
      output_id: outputId,
      metric,
      amount: charge[metric],
      total: state.own[metric],
      cap: caps.length === 0 ? null : Math.min(...caps),
      exceeded: false,
      detail: {
        platform_run_id: subject.platformRunId,
        seq_from: charge.seqFrom ?? null,
        seq_to: charge.seqTo ?? null,
      },
    };
    return walRecord(
      "budget",
      body,
      at,
      sha256Hex(`budget|${subject.runKey}|${outputId}|${metric}|${charge.seqFrom}|${charge.seqTo}`),
    );
  });
}

/** The ledger row and the receipt of a hand-over a cap cut short. */
function exceededRecord(
  state: {
    readonly subject: RunBudgetSubject;
    readonly outputId: string;
  },
  hit: {
    readonly cap: CapState;
    readonly metric: "events" | "bytes";
    readonly refused: Usage;
    readonly nextSeq: number;
  },
  at: Date,
): {
  readonly record: WalRecord;
  readonly receipt: ReceiptDraft & { detail: Record<string, unknown> };
} {
  const { subject, outputId } = state;
  const { budget, index, used } = hit.cap;
  const cap = (hit.metric === "events" ? budget.max_events : budget.max_bytes)!;
  const detail = {
    annotations: {
      action: ACTION,
      cost: { events: hit.refused.events, bytes: hit.refused.bytes },
    },
    budget: { index, scope: budget.scope, match: budget.match, metric: hit.metric, cap },
    used: { events: used.events, bytes: used.bytes },
    platform_run_id: subject.platformRunId,
    next_seq: hit.nextSeq,
  };
  const record = walRecord(
    "budget",
    {
      principal: subject.principal,
      run_key: subject.runKey,
      output_id: outputId,
      metric: hit.metric,
      amount: 0,
      total: used[hit.metric],
      cap,
      exceeded: true,
      detail,
    },
    at,
    sha256Hex(`budget|${subject.runKey}|${outputId}|exceeded|${hit.nextSeq}|${at.toISOString()}`),
  );
  return {
    record,
    receipt: {
      kind: "budget_exceeded",
      status: "hard_block",
      rationale:
        `${outputId}: budget ${index} (${budget.scope} ${budget.match}) caps ${hit.metric} ` +
        `at ${cap} and ${used[hit.metric]} are used; the output stops before event ${hit.nextSeq}`,
      badges: ["budget_exceeded"],
      inputs_digest: sha256Hex(canonicalJson(detail)),
      actor: subject.principal,
      run_key: subject.runKey,
      output_id: outputId,
      detail,
    },
  };
}

/** Sleeps `ms` (Clock), or until a stop request when that is longer; true when stopped. */
function sleepOrStop(ms: number, stop: Deferred.Deferred<void>): Effect.Effect<boolean> {
  return ms <= SHORT_WAIT_MS
    ? Effect.sleep(`${ms} millis`).pipe(Effect.andThen(Deferred.isDone(stop)))
    : Effect.raceFirst(
      Effect.sleep(`${ms} millis`).pipe(Effect.as(false)),
      Deferred.await(stop).pipe(Effect.as(true)),
    );
}

function sum(values: ReadonlyArray<number>, from: number, to: number): number {
  let total = 0;
  for (let i = from; i < to && i < values.length; i++) total += values[i];
  return total;
}

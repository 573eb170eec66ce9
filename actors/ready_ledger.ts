/**
 * The READY ledger: an append-only log of every decision on a control-bus message
 * (`ws_ready_ledger` in Postgres). A message is done once STREAMED or skipped; FAILED and
 * DEFERRED_DOWNSTREAM_NOT_READY leave it open for another attempt, so "already done?" is a
 * question for the whole log, never for the latest row alone.
 *
 * Offline-first: nothing here waits on Postgres. A decision is first added to a local summary —
 * per message its latest decision, highest attempt and whether it was ever STREAMED — kept in
 * memory and in an append-only file (`ready_ledger.ndjson` in the runs root), then appended to
 * the WAL, whose drain copies it to Postgres idempotently by record id. Reads answer from the
 * summary, so a READY delivered again while Postgres is down is still SKIPPED_DUPLICATE, across
 * restarts too. (The file is written first: if the WAL append then fails, the summary is ahead
 * by a decision that was really made, which only skips an attempt number.)
 *
 * The summary is complete once it has been seeded from Postgres (every message's summary, loaded
 * the first time Postgres answers; a background fiber keeps trying). Until then, a message the
 * summary does not settle may have history only Postgres holds, so a read that needs it fails
 * READY_LEDGER_UNAVAILABLE rather than guess (the control bus defers that READY); "was it
 * STREAMED?" is answered when the summary already says yes, which never becomes untrue.
 *
 * One writer per ledger: this process numbers the attempts. Rows another runtime writes to the
 * same database later are not seen by this one.
 */
import { Clock, Context, Duration, Effect, Layer, Schedule, Semaphore } from "effect";
import { supervised } from "../core/supervise.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { replaceFileDurably, writeAll } from "../stores/durable_file.ts";
import { READY_STATUSES, readyRecordId, type ReadyStatus } from "../stores/ledger_ids.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import { Wal, type WalRecord } from "./wal/writer.ts";

export { READY_STATUSES, readyRecordId, type ReadyStatus } from "../stores/ledger_ids.ts";

/** Statuses after which a message is never attempted again. */
export const SETTLED_STATUSES: ReadonlySet<ReadyStatus> = new Set([
  "STREAMED",
  // Every event handled: its dead letters are retried with `dead-letters retry`, not by
  // streaming the world again.
  "STREAMED_WITH_DEAD_LETTERS",
  "SKIPPED_DUPLICATE",
  "SKIPPED_OUT_OF_SCOPE",
]);

/** Statuses that mean the world was streamed to its end (a redelivery is a duplicate). */
const STREAMED_STATUSES: ReadonlySet<ReadyStatus> = new Set([
  "STREAMED",
  "STREAMED_WITH_DEAD_LETTERS",
]);

/** True when a message whose latest decision is `status` must not be attempted again. */
export function isSettled(status: ReadyStatus): boolean {
  return SETTLED_STATUSES.has(status);
}

/** One decision to record. */
export interface ReadyDecision {
  readonly message_id: string;
  readonly status: ReadyStatus;
  readonly reason?: string;
  readonly platform_run_id?: string;
  readonly scenario_run_id?: string;
  readonly detail?: Readonly<Record<string, unknown>>;
  /** When the decision was made; defaults to the Effect Clock's now. */
  readonly at?: Date;
  /** The attempt number, when the caller already chose it; otherwise the next one. */
  readonly attempt?: number;
}

/** What {@link ReadyLedger.record} journaled, or found already recorded. */
export interface RecordedDecision {
  readonly record_id: string;
  readonly attempt: number;
  /** False when the same decision was already the message's latest (nothing was written). */
  readonly inserted: boolean;
}

/** The latest decision on a message. */
export interface LatestDecision {
  readonly status: ReadyStatus;
  readonly reason: string | undefined;
  /** The latest row's attempt number. */
  readonly attempt: number;
  /** How many decisions the message has had (attempts are numbered 1, 2, … by the writer). */
  readonly attempts: number;
  readonly recorded_at: Date;
  readonly platform_run_id: string | undefined;
  readonly scenario_run_id: string | undefined;
}

/** Where the ledger keeps its local summary. */
export interface ReadyLedgerOptions {
  /** The summary file (append-only NDJSON; created if missing). */
  readonly file: string;
  /** How long one try at seeding from Postgres may take before it counts as unreachable (5 s). */
  readonly seedTimeoutMs?: number;
}

/** The READY ledger. */
export class ReadyLedger extends Context.Service<ReadyLedger, {
  /**
   * Records a decision (summary file, then WAL). Recording the decision that is already the
   * message's latest (same status and instant, or the same record id) writes nothing.
   */
  readonly record: (
    decision: ReadyDecision,
  ) => Effect.Effect<RecordedDecision, WorldstreamError>;
  /**
   * The latest decision on a message, or `undefined` when it has none; READY_LEDGER_UNAVAILABLE
   * while the summary is not seeded and Postgres is unreachable.
   */
  readonly latest: (
    messageId: string,
  ) => Effect.Effect<LatestDecision | undefined, WorldstreamError>;
  /**
   * True once any decision on the message was STREAMED (a redelivery is then a duplicate);
   * READY_LEDGER_UNAVAILABLE when only an unreachable Postgres could tell.
   */
  readonly isStreamed: (messageId: string) => Effect.Effect<boolean, WorldstreamError>;
  /** Whether the summary has been seeded from Postgres (reads no longer need it). */
  readonly seeded: Effect.Effect<boolean>;
}>()("worldstream/stores/ReadyLedger") {
  /** A ledger journaling to the WAL, with its summary in `options.file`. */
  static readonly layer = (
    options: ReadyLedgerOptions,
  ): Layer.Layer<ReadyLedger, WorldstreamError, Wal | Postgres> =>
    Layer.effect(ReadyLedger, make(options));
}

// ---------------------------------------------------------------------------------------------
// The summary

/** One ledger row, as the summary keeps the latest of a message. */
interface Row {
  readonly record_id: string;
  readonly status: ReadyStatus;
  readonly reason: string | null;
  readonly attempt: number;
  /** ISO-8601 with milliseconds (`Date.toISOString`), so text order is time order. */
  readonly recorded_at: string;
  readonly platform_run_id: string | null;
  readonly scenario_run_id: string | null;
}

/** What is known of one message; merging two is idempotent and order-free. */
interface Summary {
  readonly message_id: string;
  /** The highest attempt number seen. */
  readonly attempts: number;
  readonly streamed: boolean;
  readonly latest: Row;
}

/** A line of the summary file: a message's summary, or the mark that seeding finished. */
type Line = Summary | { readonly seeded: true };

function laterRow(a: Row, b: Row): Row {
  if (a.attempt !== b.attempt) return a.attempt > b.attempt ? a : b;
  if (a.recorded_at !== b.recorded_at) return a.recorded_at > b.recorded_at ? a : b;
  return a.record_id >= b.record_id ? a : b;
}

function merge(a: Summary | undefined, b: Summary): Summary {
  if (a === undefined) return b;
  return {
    message_id: a.message_id,
    attempts: Math.max(a.attempts, b.attempts),
    streamed: a.streamed || b.streamed,
    latest: laterRow(a.latest, b.latest),
  };
}

function sameSummary(a: Summary | undefined, b: Summary): boolean {
  return a !== undefined && a.attempts === b.attempts && a.streamed === b.streamed &&
    a.latest.record_id === b.latest.record_id;
}

function summaryOfRow(messageId: string, row: Row): Summary {
  return {
    message_id: messageId,
    attempts: row.attempt,
    streamed: STREAMED_STATUSES.has(row.status),
    latest: row,
  };
}

function isSummary(value: unknown): value is Summary {
  const v = value as Partial<Summary> | null;
  const row = v?.latest as Partial<Row> | undefined;
  return typeof v?.message_id === "string" && Number.isSafeInteger(v.attempts) &&
    typeof v.streamed === "boolean" && row !== undefined && typeof row.record_id === "string" &&
    (READY_STATUSES as ReadonlyArray<unknown>).includes(row.status) &&
    Number.isSafeInteger(row.attempt) && typeof row.recorded_at === "string";
}

function toLatest(s: Summary): LatestDecision {
  const row = s.latest;
  return {
    status: row.status,
    reason: row.reason ?? undefined,
    attempt: row.attempt,
    attempts: Math.max(s.attempts, row.attempt),
    recorded_at: new Date(row.recorded_at),
    platform_run_id: row.platform_run_id ?? undefined,
    scenario_run_id: row.scenario_run_id ?? undefined,
  };
}

/** Every message's summary in Postgres (sql/postgres/queries/ready_ledger_summary.sql). */
const SUMMARY = pgQuery("ready_ledger_summary");

interface SummaryRow {
  readonly message_id: string;
  readonly record_id: string;
  readonly status: ReadyStatus;
  readonly reason: string | null;
  readonly platform_run_id: string | null;
  readonly scenario_run_id: string | null;
  readonly attempt: number;
  readonly recorded_at: Date;
  readonly attempts: number;
  readonly streamed: boolean;
}

// ---------------------------------------------------------------------------------------------
// The service

const make = (options: ReadyLedgerOptions) =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    const wal = yield* Wal;
    const file = options.file;
    const loaded = yield* readSummaryFile(file);
    const summaries = loaded.summaries;
    let seeded = loaded.seeded;
    if (loaded.damaged > 0) {
      yield* Effect.logWarning(
        `READY ledger summary ${file}: ${loaded.damaged} unreadable line(s) dropped` +
          (loaded.seeded ? "" : "; it will be seeded from Postgres again"),
      );
    }
    // Undrained decisions are in the file already unless it was lost: the WAL restores them.
    let changed = loaded.damaged > 0 || loaded.lines > 2 * summaries.size + 64;
    for (const r of yield* wal.pending) {
      if (r.kind !== "ready_ledger") continue;
      const b = r.body as Record<string, unknown>;
      const s = summaryOfRow(String(b.message_id), {
        record_id: r.record_id,
        status: b.status as ReadyStatus,
        reason: (b.reason as string | null | undefined) ?? null,
        attempt: Number(b.attempt),
        recorded_at: new Date(r.at).toISOString(),
        platform_run_id: (b.platform_run_id as string | null | undefined) ?? null,
        scenario_run_id: (b.scenario_run_id as string | null | undefined) ?? null,
      });
      const before = summaries.get(s.message_id);
      const after = merge(before, s);
      if (!sameSummary(before, after)) {
        summaries.set(s.message_id, after);
        changed = true;
      }
    }
    if (changed) yield* rewriteSummaryFile(file, summaries, seeded);

    const writeLock = yield* Semaphore.make(1);
    const seedLock = yield* Semaphore.make(1);
    let seedFailures = 0;

    const seed: Effect.Effect<void, WorldstreamError> = seedLock.withPermit(
      Effect.gen(function* () {
        if (seeded) return;
        const rows = yield* pg.query<SummaryRow>(SUMMARY).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(options.seedTimeoutMs ?? 5000),
            orElse: () =>
              Effect.fail(
                fail("PG_UNAVAILABLE", "Postgres did not answer the ledger's seed query"),
              ),
          }),
        );
        yield* writeLock.withPermit(Effect.gen(function* () {
          for (const row of rows) {
            const s: Summary = {
              message_id: row.message_id,
              attempts: Number(row.attempts),
              streamed: row.streamed === true,
              latest: {
                record_id: row.record_id,
                status: row.status,
                reason: row.reason,
                attempt: Number(row.attempt),
                recorded_at: new Date(row.recorded_at).toISOString(),
                platform_run_id: row.platform_run_id,
                scenario_run_id: row.scenario_run_id,
              },
            };
            summaries.set(s.message_id, merge(summaries.get(s.message_id), s));
          }
          yield* rewriteSummaryFile(file, summaries, true);
          seeded = true;
        }));
        yield* Effect.logInfo("READY ledger seeded from Postgres").pipe(
          Effect.annotateLogs({ messages: rows.length, after_failures: seedFailures }),
        );
      }),
    ).pipe(
      Effect.tapError((e) =>
        Effect.suspend(() =>
          seedFailures++ === 0
            ? Effect.logWarning(
              "degraded: READY ledger not seeded from Postgres yet; a READY it knows nothing " +
                "about is deferred until Postgres answers",
            ).pipe(Effect.annotateLogs({ reason: e.reason, error: e.message }))
            : Effect.void
        )
      ),
    );
    const trySeed = Effect.suspend(() => seeded ? Effect.void : Effect.ignore(seed));

    if (!seeded) {
      yield* Effect.forkScoped(supervised(
        "ready_ledger_seed",
        seed.pipe(
          Effect.retry({
            schedule: Schedule.min([
              Schedule.exponential(Duration.millis(500)),
              Schedule.spaced(Duration.seconds(30)),
            ]),
          }),
          Effect.ignore,
        ),
      ));
    }

    const unavailable = (messageId: string) =>
      fail(
        "READY_LEDGER_UNAVAILABLE",
        `The READY ledger cannot tell what became of message ${messageId}: Postgres is ` +
          "unreachable and the local summary was never seeded from it",
      );

    const record = Effect.fn("ReadyLedger.record")(function* (decision: ReadyDecision) {
      yield* check(decision);
      const at = decision.at ?? new Date(yield* Clock.currentTimeMillis);
      yield* trySeed;
      return yield* writeLock.withPermit(Effect.gen(function* () {
        const known = summaries.get(decision.message_id);
        const iso = at.toISOString();
        if (
          decision.attempt === undefined && known !== undefined &&
          known.latest.status === decision.status && known.latest.recorded_at === iso
        ) {
          return {
            record_id: known.latest.record_id,
            attempt: known.latest.attempt,
            inserted: false,
          } satisfies RecordedDecision;
        }
        const attempt = decision.attempt ?? (known?.attempts ?? 0) + 1;
        const recordId = readyRecordId(decision.message_id, decision.status, attempt, at);
        if (known?.latest.record_id === recordId) {
          return { record_id: recordId, attempt, inserted: false } satisfies RecordedDecision;
        }
        const row: Row = {
          record_id: recordId,
          status: decision.status,
          reason: decision.reason ?? null,
          attempt,
          recorded_at: iso,
          platform_run_id: decision.platform_run_id ?? null,
          scenario_run_id: decision.scenario_run_id ?? null,
        };
        const summary = summaryOfRow(decision.message_id, row);
        yield* appendSummaryLine(file, summary);
        summaries.set(decision.message_id, merge(known, summary));
        const walRecord: WalRecord = {
          record_id: recordId,
          kind: "ready_ledger",
          at: iso,
          body: {
            message_id: decision.message_id,
            status: decision.status,
            reason: row.reason,
            platform_run_id: row.platform_run_id,
            scenario_run_id: row.scenario_run_id,
            attempt,
            detail: { ...decision.detail },
          },
        };
        yield* wal.append([walRecord]);
        return { record_id: recordId, attempt, inserted: true } satisfies RecordedDecision;
      }));
    });

    const latest = Effect.fn("ReadyLedger.latest")(function* (messageId: string) {
      yield* trySeed;
      if (!seeded) return yield* unavailable(messageId);
      const s = summaries.get(messageId);
      return s === undefined ? undefined : toLatest(s);
    });

    const isStreamed = Effect.fn("ReadyLedger.isStreamed")(function* (messageId: string) {
      if (summaries.get(messageId)?.streamed === true) return true;
      yield* trySeed;
      if (!seeded) return yield* unavailable(messageId);
      return summaries.get(messageId)?.streamed === true;
    });

    return ReadyLedger.of({
      record,
      latest,
      isStreamed,
      seeded: Effect.sync(() => seeded),
    });
  });

function check(decision: ReadyDecision): Effect.Effect<void, WorldstreamError> {
  if (decision.message_id === "") {
    return Effect.fail(fail("READY_LEDGER_INVALID", "A ledger decision needs a message_id"));
  }
  if (!(READY_STATUSES as ReadonlyArray<string>).includes(decision.status)) {
    return Effect.fail(
      fail("READY_LEDGER_INVALID", `Unknown READY ledger status ${decision.status}`),
    );
  }
  if (
    decision.attempt !== undefined &&
    (!Number.isSafeInteger(decision.attempt) || decision.attempt < 1)
  ) {
    return Effect.fail(
      fail("READY_LEDGER_INVALID", `Attempt must be a positive integer, got ${decision.attempt}`),
    );
  }
  if (decision.at !== undefined && Number.isNaN(decision.at.getTime())) {
    return Effect.fail(fail("READY_LEDGER_INVALID", "Decision time is not a valid date"));
  }
  return Effect.void;
}

// ---------------------------------------------------------------------------------------------
// The summary file

interface LoadedSummary {
  readonly summaries: Map<string, Summary>;
  readonly seeded: boolean;
  readonly lines: number;
  /** Lines that did not parse; a torn last line (a crash mid-append) is one. */
  readonly damaged: number;
}

function readSummaryFile(file: string): Effect.Effect<LoadedSummary, WorldstreamError> {
  return ledgerIo(`read ${file}`, async () => {
    let text = "";
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const summaries = new Map<string, Summary>();
    const lines = text.split("\n").filter((l) => l !== "");
    let seeded = false;
    let damaged = 0;
    let damagedBeforeEnd = false;
    for (const [i, line] of lines.entries()) {
      const value = parseLine(line);
      if (value === undefined) {
        damaged += 1;
        if (i < lines.length - 1) damagedBeforeEnd = true;
      } else if ("seeded" in value) {
        seeded = true;
      } else {
        summaries.set(value.message_id, merge(summaries.get(value.message_id), value));
      }
    }
    // Only a torn last line (a crash mid-append) is expected; damage before it may have taken
    // any line, so the summary no longer counts as complete.
    if (damagedBeforeEnd) seeded = false;
    return { summaries, seeded, lines: lines.length, damaged };
  });
}

function parseLine(text: string): Line | undefined {
  try {
    const value = JSON.parse(text);
    if (value?.seeded === true) return { seeded: true };
    return isSummary(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function appendSummaryLine(file: string, line: Line): Effect.Effect<void, WorldstreamError> {
  return ledgerIo(`append to ${file}`, async () => {
    const handle = await Deno.open(file, { append: true, create: true });
    try {
      await writeAll(handle, encoder.encode(JSON.stringify(line) + "\n"));
      await handle.syncData();
    } finally {
      handle.close();
    }
  });
}

/** Replaces the file with one line per message (and the seeded mark), atomically. */
function rewriteSummaryFile(
  file: string,
  summaries: ReadonlyMap<string, Summary>,
  seeded: boolean,
): Effect.Effect<void, WorldstreamError> {
  return ledgerIo(`write ${file}`, () => {
    const lines: Array<Line> = [...summaries.values()];
    if (seeded) lines.push({ seeded: true });
    const text = lines.map((l) => JSON.stringify(l) + "\n").join("");
    return replaceFileDurably(file, encoder.encode(text));
  });
}

const encoder = new TextEncoder();

function ledgerIo<A>(what: string, f: () => Promise<A>): Effect.Effect<A, WorldstreamError> {
  return Effect.tryPromise({
    try: f,
    catch: (e) =>
      fail(
        "READY_LEDGER_IO_FAILED",
        `READY ledger could not ${what}: ${
          (e instanceof Error ? e.message : String(e)).split("\n")[0]
        }`,
      ),
  });
}

/**
 * The READY ledger (`ws_ready_ledger`): an append-only log of every decision on a control-bus
 * message. A message is done once STREAMED or skipped; FAILED and DEFERRED_DOWNSTREAM_NOT_READY
 * leave it open for another attempt, so "already done?" is a question for this log, never for
 * the latest row alone.
 */
import { Clock, Context, Effect, Layer } from "effect";
import { sha256Hex } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "./postgres.ts";

/** Every status a READY consumer records (CONTRACTS.md). */
export const READY_STATUSES = [
  "STREAMED",
  "FAILED",
  "SKIPPED_DUPLICATE",
  "SKIPPED_OUT_OF_SCOPE",
  "DEFERRED_DOWNSTREAM_NOT_READY",
] as const;
export type ReadyStatus = typeof READY_STATUSES[number];

/** Statuses after which a message is never attempted again. */
export const SETTLED_STATUSES: ReadonlySet<ReadyStatus> = new Set([
  "STREAMED",
  "SKIPPED_DUPLICATE",
  "SKIPPED_OUT_OF_SCOPE",
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
  /**
   * The attempt number, when the writer already chose it (a WAL record being drained); otherwise
   * the next one after the message's latest row.
   */
  readonly attempt?: number;
}

/** What {@link ReadyLedger.record} wrote, or found already written. */
export interface RecordedDecision {
  readonly record_id: string;
  readonly attempt: number;
  /** False when the same decision was already in the ledger. */
  readonly inserted: boolean;
}

/** The latest decision on a message. */
export interface LatestDecision {
  readonly status: ReadyStatus;
  readonly reason: string | undefined;
  /** The latest row's attempt number. */
  readonly attempt: number;
  /** How many decisions the message has had. */
  readonly attempts: number;
  readonly recorded_at: Date;
  readonly platform_run_id: string | undefined;
  readonly scenario_run_id: string | undefined;
}

/** A ledger row's id: `sha256_hex("{message_id}|{status}|{attempt}|{at ISO-8601}")`. */
export function readyRecordId(
  messageId: string,
  status: ReadyStatus,
  attempt: number,
  at: Date,
): string {
  return sha256Hex(`${messageId}|${status}|${attempt}|${at.toISOString()}`);
}

const LOCK = pgQuery("ready_ledger_lock");
const FIND = pgQuery("ready_ledger_find");
const NEXT_ATTEMPT = pgQuery("ready_ledger_next_attempt");
const INSERT = pgQuery("ready_ledger_insert");
const LATEST = pgQuery("ready_ledger_latest");
const STREAMED = pgQuery("ready_ledger_streamed");

const make = Effect.gen(function* () {
  const pg = yield* Postgres;

  const record = Effect.fn("ReadyLedger.record")(function* (decision: ReadyDecision) {
    yield* check(decision);
    const at = decision.at ?? new Date(yield* Clock.currentTimeMillis);
    return yield* pg.transaction((tx) =>
      Effect.gen(function* () {
        yield* tx.query(LOCK, [decision.message_id]);
        if (decision.attempt === undefined) {
          const [same] = yield* tx.query<{ record_id: string; attempt: number }>(FIND, [
            decision.message_id,
            decision.status,
            at,
          ]);
          if (same !== undefined) {
            return { record_id: same.record_id, attempt: same.attempt, inserted: false };
          }
        }
        const attempt = decision.attempt ??
          (yield* tx.query<{ attempt: number }>(NEXT_ATTEMPT, [decision.message_id]))[0].attempt;
        const recordId = readyRecordId(decision.message_id, decision.status, attempt, at);
        const inserted = yield* tx.query(INSERT, [
          recordId,
          decision.message_id,
          decision.status,
          decision.reason ?? null,
          decision.platform_run_id ?? null,
          decision.scenario_run_id ?? null,
          attempt,
          at,
          { ...decision.detail },
        ]);
        return { record_id: recordId, attempt, inserted: inserted.length > 0 };
      })
    );
  });

  const latest = Effect.fn("ReadyLedger.latest")(function* (messageId: string) {
    const [row] = yield* pg.query<{
      status: ReadyStatus;
      reason: string | null;
      attempt: number;
      attempts: number;
      recorded_at: Date;
      platform_run_id: string | null;
      scenario_run_id: string | null;
    }>(LATEST, [messageId]);
    if (row === undefined) return undefined;
    return {
      status: row.status,
      reason: row.reason ?? undefined,
      attempt: Number(row.attempt),
      attempts: Number(row.attempts),
      recorded_at: row.recorded_at,
      platform_run_id: row.platform_run_id ?? undefined,
      scenario_run_id: row.scenario_run_id ?? undefined,
    } satisfies LatestDecision;
  });

  const isStreamed = Effect.fn("ReadyLedger.isStreamed")(function* (messageId: string) {
    const [row] = yield* pg.query<{ streamed: boolean }>(STREAMED, [messageId]);
    return row?.streamed === true;
  });

  return ReadyLedger.of({ record, latest, isStreamed });
});

/** The READY ledger over Postgres (migrations must have run). */
export class ReadyLedger extends Context.Service<ReadyLedger, {
  /** Appends a decision; recording the same decision twice (same message, status, instant) is a no-op. */
  readonly record: (
    decision: ReadyDecision,
  ) => Effect.Effect<RecordedDecision, WorldstreamError>;
  /** The latest decision on a message, or `undefined` when it was never recorded. */
  readonly latest: (
    messageId: string,
  ) => Effect.Effect<LatestDecision | undefined, WorldstreamError>;
  /** True once any decision on the message was STREAMED (a redelivery is then a duplicate). */
  readonly isStreamed: (messageId: string) => Effect.Effect<boolean, WorldstreamError>;
}>()("worldstream/stores/ReadyLedger") {
  static readonly layer: Layer.Layer<ReadyLedger, never, Postgres> = Layer.effect(this, make);
}

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

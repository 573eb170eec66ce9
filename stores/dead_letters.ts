/**
 * Dead letters (`ws_dead_letters`) as work items: envelopes the gate never took, stored whole by
 * the supervisor through the WAL, OPEN until a retry the gate accepts closes them.
 *
 * Reads come from Postgres, so a dead letter still in the WAL is not seen until the drain has
 * copied it: callers drain first (`WalDrain.drainNow`). Nothing writes the table from here. A
 * retry is a `dead_letter_retry` WAL record made by {@link retryRecord}, appended together with
 * its receipt ({@link retryReceipt}) through the Journal; the drain folds it into the row
 * (sql/postgres/queries/wal_drain_dead_letter_retries.sql), idempotently by record id.
 */
import { Context, Effect, Layer, Schema } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { JsonObject, NonEmptyString, NonNegativeInt } from "../schemas/common.ts";
import { decodeWith } from "../schemas/decode.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import { pgQuery, Postgres } from "./postgres.ts";
import { type WalRecord, walRecord } from "./wal_records.ts";

/** The statuses a dead letter moves through (OPEN → CLOSED, never back). */
export const DEAD_LETTER_STATUSES = ["OPEN", "CLOSED"] as const;
export type DeadLetterStatus = typeof DEAD_LETTER_STATUSES[number];

/** One stored dead letter, as read back. */
export const DeadLetter = Schema.Struct({
  /** The record id it was stored under: what an operator names to retry it. */
  id: NonEmptyString,
  /** Arrival order in Postgres. */
  seq: NonNegativeInt,
  run_key: NonEmptyString,
  output_id: NonEmptyString,
  event_id: NonEmptyString,
  /** From the envelope; null when the envelope has none. */
  platform_run_id: Schema.NullOr(Schema.String),
  envelope: JsonObject,
  /** Requests that carried the envelope: the courier's, then every retry's. */
  attempts: NonNegativeInt,
  retries: NonNegativeInt,
  last_status: Schema.NullOr(NonNegativeInt),
  reason: Schema.String,
  /** Another status in the table (written by hand or by a later version) is DEAD_LETTER_INVALID. */
  status: Schema.Literals(DEAD_LETTER_STATUSES),
  at: Schema.Date,
  last_retry_at: Schema.NullOr(Schema.Date),
  closed_at: Schema.NullOr(Schema.Date),
  closed_receipt_id: Schema.NullOr(Schema.String),
});
export type DeadLetter = typeof DeadLetter.Type;

/** Which dead letters to list; every filter is optional. */
export interface DeadLetterFilter {
  /** OPEN or CLOSED; undefined lists both. */
  readonly status?: DeadLetterStatus;
  readonly runKey?: string;
  readonly platformRunId?: string;
  readonly outputId?: string;
  /** Keyset paging: only dead letters after this `seq` (0). */
  readonly afterSeq?: number;
  /** At most this many (500). */
  readonly limit?: number;
}

const LIST = pgQuery("dead_letter_list");
const FIND = pgQuery("dead_letter_find");
const decodeRow = decodeWith(DeadLetter, "DEAD_LETTER_INVALID", "ws_dead_letters row");

const make = Effect.gen(function* () {
  const pg = yield* Postgres;

  const list = Effect.fn("DeadLetters.list")(function* (filter: DeadLetterFilter = {}) {
    const rows = yield* pg.query(LIST, [
      filter.status ?? null,
      filter.runKey ?? null,
      filter.platformRunId ?? null,
      filter.outputId ?? null,
      filter.afterSeq ?? 0,
      filter.limit ?? 500,
    ]);
    return yield* Effect.forEach(rows, decodeRow);
  });

  const find = Effect.fn("DeadLetters.find")(function* (id: string) {
    const [row] = yield* pg.query(FIND, [id]);
    return row === undefined ? undefined : yield* decodeRow(row);
  });

  return DeadLetters.of({ list, find });
});

/** The dead letters in Postgres (migrations must have run). */
export class DeadLetters extends Context.Service<DeadLetters, {
  /** Dead letters matching `filter`, in arrival order. */
  readonly list: (
    filter?: DeadLetterFilter,
  ) => Effect.Effect<ReadonlyArray<DeadLetter>, WorldstreamError>;
  /** One dead letter by id, or `undefined` when there is none. */
  readonly find: (id: string) => Effect.Effect<DeadLetter | undefined, WorldstreamError>;
}>()("worldstream/stores/DeadLetters") {
  static readonly layer: Layer.Layer<DeadLetters, never, Postgres> = Layer.effect(this, make);
}

/** What one retry of one dead letter came to. */
export interface RetryOutcome {
  /** CLOSED when the gate took the envelope (ADMIT or DUPLICATE). */
  readonly outcome: DeadLetterStatus;
  /** The gate's decision, or null without a 200 answer. */
  readonly decision: string | null;
  /** Requests this retry made. */
  readonly requests: number;
  /** The last HTTP status (0 for no answer). */
  readonly lastStatus: number | null;
  /** Why it is still open (null when closed). */
  readonly reason: string | null;
  readonly message?: string;
}

/** Who retried and when. */
export interface RetryContext {
  readonly actor: string;
  readonly at: Date;
}

/**
 * The receipt id of the `retry`-th retry of a dead letter. Derived, not drawn, so the WAL record
 * can name the receipt appended with it; a dead letter is retried by one writer (the WAL's lock)
 * and each retry has the next number, so the id is unique along the chain.
 */
export function retryReceiptId(letter: Pick<DeadLetter, "id" | "retries">): string {
  return sha256Hex(`dead_letter_retry|${letter.id}|${letter.retries + 1}`).slice(0, 32);
}

/** The WAL record of one retry of `letter` (its `retry` number is the next after `retries`). */
export function retryRecord(
  letter: DeadLetter,
  result: RetryOutcome,
  context: RetryContext,
): WalRecord {
  const retry = letter.retries + 1;
  return walRecord(
    "dead_letter_retry",
    {
      dead_letter_id: letter.id,
      run_key: letter.run_key,
      output_id: letter.output_id,
      event_id: letter.event_id,
      retry,
      outcome: result.outcome,
      decision: result.decision,
      requests: result.requests,
      last_status: result.lastStatus,
      reason: result.reason,
      ...(result.message === undefined ? {} : { message: result.message }),
      receipt_id: retryReceiptId(letter),
      actor: context.actor,
    },
    context.at,
    sha256Hex(`dead_letter_retry|${letter.id}|${retry}`),
  );
}

/**
 * The receipt vouching for one retry: `dead_letter_closed` (pass) when the gate took the envelope,
 * `dead_letter_retry` (soft_block) when the dead letter stays open. Either names the dead letter.
 */
export function retryReceipt(
  letter: DeadLetter,
  result: RetryOutcome,
  context: RetryContext,
): ReceiptDraft {
  const retry = letter.retries + 1;
  const closed = result.outcome === "CLOSED";
  return {
    receipt_id: retryReceiptId(letter),
    kind: closed ? "dead_letter_closed" : "dead_letter_retry",
    status: closed ? "pass" : "soft_block",
    rationale: closed
      ? `${letter.output_id}: dead letter ${letter.event_id} closed on retry ${retry}, the gate ` +
        `answered ${result.decision}`
      : `${letter.output_id}: dead letter ${letter.event_id} still open after retry ${retry} ` +
        `(${result.reason})`,
    badges: closed ? ["dead_letter_closed"] : ["dead_letter", "retry_failed"],
    inputs_digest: sha256Hex(canonicalJson(letter.envelope)),
    actor: context.actor,
    run_key: letter.run_key,
    output_id: letter.output_id,
    detail: {
      dead_letter_id: letter.id,
      event_id: letter.event_id,
      platform_run_id: letter.platform_run_id,
      retry,
      decision: result.decision,
      requests: result.requests,
      last_status: result.lastStatus,
      attempts: letter.attempts + result.requests,
      reason: closed ? letter.reason : result.reason,
      ...(result.message === undefined ? {} : { message: result.message }),
    },
  };
}

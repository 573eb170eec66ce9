/**
 * Action `dead_letter_purge`: an operator gives up on dead letters. Each selected OPEN dead letter
 * is closed without being sent, recorded as a retry that sent nothing (`dead_letter_retry` WAL
 * record, decision PURGED, 0 requests) appended with a `dead_letter_purged` receipt naming who
 * purged it, in one Journal append per page; the drain folds it into the row like any retry
 * (CLOSED, `closed_receipt_id` the purge receipt), so the envelope stays stored and
 * `audit-verify` covers the purge. Already closed dead letters are left alone.
 *
 * It goes through the Journal and the WAL of whoever runs it: the running runtime's (the admin
 * API), so it works while the runtime streams.
 */
import { Effect, Schema } from "effect";
import { Journal } from "../actors/journal.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { fail } from "../schemas/errors.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import {
  type DeadLetter,
  type DeadLetterFilter,
  DeadLetters,
  type RetryContext,
  type RetryOutcome,
  retryReceiptId,
  retryRecord,
} from "../stores/dead_letters.ts";

/** Which dead letters to purge: these ids, or every open one matching a filter. */
export type PurgeSelection =
  | { readonly ids: ReadonlyArray<string> }
  | {
    readonly all: Pick<DeadLetterFilter, "runKey" | "platformRunId" | "outputId">;
    readonly limit?: number;
  };

/** What a purge did. */
export const PurgeSummary = Schema.Struct({
  status: Schema.Literal("OK"),
  /** Closed by this purge. */
  purged: Schema.Int,
  /** Selected by id but closed before: nothing to do. */
  already_closed: Schema.Int,
  /** The purged dead letters' ids. */
  ids: Schema.Array(Schema.String),
});
export type PurgeSummary = typeof PurgeSummary.Type;

const PAGE = 500;

/** Purges the selected dead letters; DEAD_LETTER_NOT_FOUND names an unknown id (nothing purged). */
export const purgeDeadLetters = Effect.fn("purgeDeadLetters")(function* (
  selection: PurgeSelection,
  actor: string,
) {
  const drain = yield* WalDrain;
  const store = yield* DeadLetters;
  const journal = yield* Journal;
  yield* drain.drainNow;
  const purged: Array<string> = [];
  let alreadyClosed = 0;

  const purgePage = (letters: ReadonlyArray<DeadLetter>) =>
    Effect.gen(function* () {
      if (letters.length === 0) return;
      const context: RetryContext = { actor, at: yield* journal.now };
      const outcome = (letter: DeadLetter): RetryOutcome => ({
        outcome: "CLOSED",
        decision: "PURGED",
        requests: 0,
        lastStatus: letter.last_status,
        reason: null,
        message: `Purged by ${actor}`,
      });
      yield* journal.append(
        letters.map((l) => retryRecord(l, outcome(l), context)),
        letters.map((l) => purgeReceipt(l, context)),
      );
      for (const l of letters) purged.push(l.id);
    });

  if ("ids" in selection) {
    const found: Array<DeadLetter> = [];
    for (const id of new Set(selection.ids)) {
      const letter = yield* store.find(id);
      if (letter === undefined) {
        return yield* fail("DEAD_LETTER_NOT_FOUND", `No dead letter has id ${id}`);
      }
      if (letter.status === "CLOSED") alreadyClosed++;
      else found.push(letter);
    }
    for (let i = 0; i < found.length; i += PAGE) yield* purgePage(found.slice(i, i + PAGE));
  } else {
    let left = selection.limit ?? Number.POSITIVE_INFINITY;
    let afterSeq = 0;
    while (left > 0) {
      const page = yield* store.list({
        ...selection.all,
        status: "OPEN",
        afterSeq,
        limit: Math.min(PAGE, left),
      });
      if (page.length === 0) break;
      yield* purgePage(page);
      afterSeq = page[page.length - 1].seq;
      left -= page.length;
    }
  }
  yield* drain.drainNow.pipe(
    Effect.catch((e) =>
      Effect.logWarning(`Purges are in the WAL but not yet in Postgres: ${e.message}`)
    ),
  );
  return {
    status: "OK",
    purged: purged.length,
    already_closed: alreadyClosed,
    ids: purged,
  } satisfies PurgeSummary as PurgeSummary;
});

/** The receipt vouching for one purge: `dead_letter_purged` (warn: an event given up on). */
function purgeReceipt(letter: DeadLetter, context: RetryContext): ReceiptDraft {
  return {
    receipt_id: retryReceiptId(letter),
    kind: "dead_letter_purged",
    status: "warn",
    rationale: `${letter.output_id}: dead letter ${letter.event_id} purged by ${context.actor}, ` +
      `never delivered`,
    badges: ["dead_letter_purged"],
    inputs_digest: sha256Hex(canonicalJson(letter.envelope)),
    actor: context.actor,
    run_key: letter.run_key,
    output_id: letter.output_id,
    detail: {
      dead_letter_id: letter.id,
      event_id: letter.event_id,
      platform_run_id: letter.platform_run_id,
      retry: letter.retries + 1,
      attempts: letter.attempts,
      reason: letter.reason,
    },
  };
}

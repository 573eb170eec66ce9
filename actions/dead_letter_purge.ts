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
 *
 * A purge by ids is a multi-step action (core/compensation.ts), one step per page: when a page
 * fails after earlier pages were purged, each purged dead letter is restored to OPEN (a
 * `dead_letter_retry` record with decision RESTORED and a `dead_letter_restored` receipt; the
 * envelope was kept, so nothing is lost), newest page first, and the purge ends ROLLED_BACK with a
 * `dead_letter_purge_rolled_back` receipt naming the failure. Purging every open dead letter of a
 * filter (`all`) pages as it goes and is not rolled back: each page stands on its own.
 */
import { Effect, Schema } from "effect";
import { Journal } from "../actors/journal.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { runSteps, type Step } from "../core/compensation.ts";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import type { JsonObject } from "../schemas/common.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type Asker, governed } from "./governed.ts";
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
  /** ROLLED_BACK: a page failed, the pages purged before it were restored to OPEN. */
  status: Schema.Literals(["OK", "ROLLED_BACK"]),
  /** Closed by this purge. */
  purged: Schema.Int,
  /** Selected by id but closed before: nothing to do. */
  already_closed: Schema.Int,
  /** The purged dead letters' ids. */
  ids: Schema.Array(Schema.String),
  /** ROLLED_BACK: the dead letters purged and then restored to OPEN. */
  restored: Schema.optionalKey(Schema.Array(Schema.String)),
  /** ROLLED_BACK: why the failing page failed. */
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
});
export type PurgeSummary = typeof PurgeSummary.Type;

const PAGE = 500;

/** Tuning and the test's hook. */
export interface PurgeOptions {
  /** Dead letters per page, one Journal append each (500). */
  readonly pageSize?: number;
  /** Runs before page `index` (0-based) of a purge by ids; a failure fails that page. */
  readonly beforePage?: (index: number) => Effect.Effect<void, WorldstreamError>;
}

/**
 * The purge through the door that can park it (actions/governed.ts): `deadletter.purge` is
 * CRITICAL in the shipped registry, so the shipped policy parks an operator's purge.
 */
export const governedPurge = (selection: PurgeSelection, who: Asker) =>
  governed(
    "deadletter.purge",
    { ...selection } as JsonObject,
    who,
    purgeDeadLetters(selection, who.principal),
  );

/** Purges the selected dead letters; DEAD_LETTER_NOT_FOUND names an unknown id (nothing purged). */
export const purgeDeadLetters = Effect.fn("purgeDeadLetters")(function* (
  selection: PurgeSelection,
  actor: string,
  options: PurgeOptions = {},
) {
  const pageSize = options.pageSize ?? PAGE;
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

  /** Reopens the dead letters `purgePage` closed (they were purged: retries + 1). */
  const restorePage = (letters: ReadonlyArray<DeadLetter>) =>
    Effect.gen(function* () {
      const context: RetryContext = { actor, at: yield* journal.now };
      const purgedOnes = letters.map((l) => ({ ...l, retries: l.retries + 1 }));
      yield* journal.append(
        purgedOnes.map((l) =>
          retryRecord(l, {
            outcome: "OPEN",
            decision: "RESTORED",
            requests: 0,
            lastStatus: l.last_status,
            reason: l.reason,
            message: `Restored by ${actor}: the purge it was part of failed`,
          }, context)
        ),
        purgedOnes.map((l) => restoreReceipt(l, context)),
      );
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
    const steps: Array<Step<WorldstreamError, never>> = [];
    for (let i = 0; i < found.length; i += pageSize) {
      const page = found.slice(i, i + pageSize);
      const index = steps.length;
      steps.push({
        name: `page ${index}`,
        run: Effect.gen(function* () {
          if (options.beforePage) yield* options.beforePage(index);
          yield* purgePage(page);
        }),
        compensate: restorePage(page),
      });
    }
    const result = yield* runSteps(steps);
    if (result.status === "ROLLED_BACK") {
      const restored = purged.splice(0);
      yield* journal.append([], [rolledBackReceipt(actor, restored, result)]);
      yield* drain.drainNow.pipe(Effect.catch(() => Effect.void));
      return {
        status: "ROLLED_BACK",
        purged: 0,
        already_closed: alreadyClosed,
        ids: [],
        restored,
        reason: result.error.reason,
        message: `Purge ${result.failed_step} failed (${result.error.message}); ` +
          `${restored.length} purged dead letters restored to OPEN`,
      } satisfies PurgeSummary as PurgeSummary;
    }
  } else {
    let left = selection.limit ?? Number.POSITIVE_INFINITY;
    const PAGE = pageSize;
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

/** The receipt of one dead letter restored to OPEN after its purge was compensated. */
function restoreReceipt(letter: DeadLetter, context: RetryContext): ReceiptDraft {
  return {
    receipt_id: retryReceiptId(letter),
    kind: "dead_letter_restored",
    status: "warn",
    rationale: `${letter.output_id}: dead letter ${letter.event_id} restored to open by ` +
      `${context.actor}: the purge it was part of failed`,
    badges: ["dead_letter_restored", "compensation"],
    inputs_digest: sha256Hex(canonicalJson(letter.envelope)),
    actor: context.actor,
    run_key: letter.run_key,
    output_id: letter.output_id,
    detail: { dead_letter_id: letter.id, event_id: letter.event_id, retry: letter.retries + 1 },
  };
}

/** The receipt of a purge by ids that failed part-way and was rolled back. */
function rolledBackReceipt(
  actor: string,
  restored: ReadonlyArray<string>,
  result: {
    readonly failed_step: string;
    readonly error: WorldstreamError;
    readonly compensated: ReadonlyArray<string>;
  },
): ReceiptDraft {
  return {
    kind: "dead_letter_purge_rolled_back",
    status: "hard_block",
    rationale: `Purge by ${actor} failed at ${result.failed_step} (${result.error.reason}); ` +
      `${restored.length} purged dead letters restored to open`,
    badges: ["rolled_back"],
    inputs_digest: sha256Hex(canonicalJson({ restored })),
    actor,
    detail: {
      status: "ROLLED_BACK",
      failed_step: result.failed_step,
      reason: result.error.reason,
      message: result.error.message,
      compensated: [...result.compensated],
      restored: [...restored],
    },
  };
}

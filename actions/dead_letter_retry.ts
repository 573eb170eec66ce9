/**
 * Action `dead_letter_retry`: each stored envelope goes back to the gate through the `IgClient`
 * service, the way the courier sends (batches, one push per envelope, or `auto`, as the profile
 * says) and with the same retry policy, and what came of each dead letter is made durable as a
 * `dead_letter_retry` WAL record and its receipt, in one Journal append per batch. ADMIT or
 * DUPLICATE closes the dead letter (`dead_letter_closed` receipt); QUARANTINE or a rejection
 * keeps it open with its attempts grown and its last status and reason recorded. A gate that never
 * answers stops the retry with IG_UNREACHABLE, and nothing is recorded for what it could not send.
 *
 * Dead letters are read after draining the WAL to Postgres, so one written a moment ago is found;
 * the retry records are drained again at the end, so the next listing shows them.
 */
import { Effect, Layer, Schema } from "effect";
import type { CourierOptions } from "../actors/courier.ts";
import { Journal } from "../actors/journal.ts";
import { fail } from "../schemas/errors.ts";
import {
  type DeadLetter,
  type DeadLetterFilter,
  DeadLetters,
  type RetryOutcome,
  retryReceipt,
  retryReceiptId,
  retryRecord,
} from "../stores/dead_letters.ts";
import { type Decided, IgClient, IgSendFailed } from "../stores/ig_client.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import type { RunConfigShape } from "../actors/run_config.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { deadLetterStores } from "./dead_letter_stores.ts";
import { servicePrincipal } from "../actors/governance.ts";
import type { JsonObject } from "../schemas/common.ts";
import { type Asker, governed } from "./governed.ts";

/** Which dead letters to retry: one by id, or every open one matching a filter. */
export type RetrySelection =
  | { readonly id: string }
  | {
    readonly all: Pick<DeadLetterFilter, "runKey" | "platformRunId" | "outputId">;
    /** Retry at most this many. */
    readonly limit?: number;
  };

/** Who is retrying, and the courier settings (page size, the gate's URL for messages). */
export interface RetryOptions {
  readonly courier: CourierOptions;
  /** The principal named in the receipts, e.g. `operator:alice`. */
  readonly actor: string;
  /** Told about each dead letter once its retry is durable. */
  readonly onRetried?: (line: RetriedLine) => Effect.Effect<void>;
}

/** One retried dead letter, as reported. */
export interface RetriedLine {
  readonly id: string;
  readonly event_id: string;
  readonly output_id: string;
  readonly platform_run_id: string | null;
  readonly status: "OPEN" | "CLOSED";
  readonly decision: string | null;
  readonly last_status: number | null;
  readonly reason: string | null;
  readonly attempts: number;
  readonly retries: number;
  readonly receipt_id: string;
}

/** The result of a retry. `status` is OK only when every selected dead letter is closed. */
export const RetrySummary = Schema.Struct({
  status: Schema.Literals(["OK", "FAILED"]),
  /** Dead letters sent and recorded by this retry. */
  retried: Schema.Number,
  /** Of those, closed now. */
  closed: Schema.Number,
  /** Of those, still open. */
  still_open: Schema.Number,
  /** Selected by id but closed before: nothing to do. */
  already_closed: Schema.Number,
  /** Selected but never sent because the gate could not be reached. */
  unsent: Schema.Number,
  /** Why the ones still open are open: reason code → count. */
  reasons: Schema.Record(Schema.String, Schema.Number),
  /** Why the retry is FAILED (IG_UNREACHABLE first, else DEAD_LETTERS_STILL_OPEN). */
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
});

/** The result of a retry. */
export type RetrySummary = typeof RetrySummary.Type;

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/**
 * The whole action, on a run configuration: checks that the profile's privacy tier lets envelopes go to the gate
 * (`local` keeps them on this host: PRIVACY_TIER_FORBIDS_NETWORK otherwise), authorizes `deadletter.retry`
 * (actions/governed.ts, recorded through the WAL it opens; parked when the policy asks for an
 * approval), then retries over the
 * profile's stores and a gate client of its own. `env` is where the receipt key is read.
 */
export const retryDeadLettersOf = Effect.fn("retryDeadLettersOf")(function* (
  config: RunConfigShape,
  env: Env,
  selection: RetrySelection,
  options: Omit<RetryOptions, "courier"> & {
    /** Who retries, for the capability policy (default: the runtime, `svc:<producer>`). */
    readonly principal?: string;
  },
) {
  const { profile, courier } = config;
  yield* retryTargetAllowed(config);
  const principal = options.principal ??
    servicePrincipal(profile.wiring.wsp_producer.producer_id);
  return yield* governedRetry(selection, { profile, principal, source: "operator" }, {
    ...options,
    courier,
  }).pipe(
    Effect.provide(Layer.merge(deadLetterStores(config, env), IgClient.layer(courier))),
  );
});

/** A retry's selection as the JSON it is parked with. */
export function retryRequestOf(selection: RetrySelection): JsonObject {
  return "id" in selection ? { id: selection.id } : {
    all: { ...selection.all },
    ...(selection.limit === undefined ? {} : { limit: selection.limit }),
  };
}

/**
 * The retry through the door that can park it (actions/governed.ts), as `deadletter.retry`:
 * the policy runs it, parks it (an approval runs it later as the approver) or refuses it.
 */
export const governedRetry = (selection: RetrySelection, who: Asker, options: RetryOptions) =>
  governed(
    "deadletter.retry",
    retryRequestOf(selection),
    who,
    retryDeadLetters(selection, options),
  );

/**
 * Whether the profile's privacy tier lets envelopes go to the configured gate (`local` keeps them
 * on this host: PRIVACY_TIER_FORBIDS_NETWORK otherwise).
 */
export const retryTargetAllowed = Effect.fn("retryTargetAllowed")(function* (
  config: RunConfigShape,
) {
  const base = config.courier.endpoint.baseUrl;
  const host = yield* Effect.try({
    try: () => new URL(base).hostname,
    catch: () => fail("BAD_ARGS", `The IG URL ${base} is not a URL`),
  });
  if (config.profile.policy.privacy_tier === "local" && !LOOPBACK.has(host)) {
    return yield* fail(
      "PRIVACY_TIER_FORBIDS_NETWORK",
      `Privacy tier local keeps data on this host; the IG at ${host} is not loopback`,
    );
  }
});

/** Retries the selected dead letters; fails DEAD_LETTER_NOT_FOUND for an unknown id. */
export const retryDeadLetters = Effect.fn("retryDeadLetters")(function* (
  selection: RetrySelection,
  options: RetryOptions,
) {
  const drain = yield* WalDrain;
  const store = yield* DeadLetters;
  const journal = yield* Journal;
  const client = yield* IgClient;
  yield* drain.drainNow;

  const tally = { retried: 0, closed: 0, stillOpen: 0, alreadyClosed: 0, unsent: 0 };
  const reasons: Record<string, number> = {};
  let unreachable: string | undefined;

  const retryBatch = (letters: ReadonlyArray<DeadLetter>) =>
    Effect.gen(function* () {
      const sent = yield* send(client, letters);
      const done = letters.flatMap((letter, i) => {
        const result = sent[i];
        return "lost" in result ? [] : [{ letter, result }];
      });
      const lost = sent.flatMap((r) => "lost" in r ? [r.lost] : []);
      if (lost.length > 0) {
        tally.unsent += lost.length;
        unreachable = `The gate at ${options.courier.endpoint.baseUrl} did not answer: ${lost[0]}`;
      }
      if (done.length === 0) return;
      const context = { actor: options.actor, at: yield* journal.now };
      yield* journal.append(
        done.map(({ letter, result }) => retryRecord(letter, result, context)),
        done.map(({ letter, result }) => retryReceipt(letter, result, context)),
      );
      for (const { letter, result } of done) {
        tally.retried++;
        if (result.outcome === "CLOSED") tally.closed++;
        else {
          tally.stillOpen++;
          const reason = result.reason ?? "UNKNOWN";
          reasons[reason] = (reasons[reason] ?? 0) + 1;
        }
        if (options.onRetried !== undefined) {
          yield* options.onRetried(lineOf(letter, result));
        }
      }
    });

  if ("id" in selection) {
    const letter = yield* store.find(selection.id);
    if (letter === undefined) {
      return yield* fail("DEAD_LETTER_NOT_FOUND", `No dead letter has id ${selection.id}`);
    }
    if (letter.status === "CLOSED") tally.alreadyClosed++;
    else yield* retryBatch([letter]);
  } else {
    let afterSeq = 0;
    let left = selection.limit ?? Number.POSITIVE_INFINITY;
    while (left > 0 && unreachable === undefined) {
      const page = yield* store.list({
        ...selection.all,
        status: "OPEN",
        afterSeq,
        limit: Math.min(options.courier.batchSize, left),
      });
      if (page.length === 0) break;
      yield* retryBatch(page);
      afterSeq = page[page.length - 1].seq;
      left -= page.length;
    }
  }

  // The retries are durable in the WAL already; copying them now lets the next listing see them.
  yield* drain.drainNow.pipe(
    Effect.catch((e) =>
      Effect.logWarning(`Retries are in the WAL but not yet in Postgres: ${e.message}`)
    ),
  );
  const failedReason = unreachable !== undefined
    ? "IG_UNREACHABLE"
    : tally.stillOpen > 0
    ? "DEAD_LETTERS_STILL_OPEN"
    : undefined;
  return {
    status: failedReason === undefined ? "OK" : "FAILED",
    retried: tally.retried,
    closed: tally.closed,
    still_open: tally.stillOpen,
    already_closed: tally.alreadyClosed,
    unsent: tally.unsent,
    reasons,
    ...(failedReason === undefined ? {} : {
      reason: failedReason,
      message: unreachable ??
        `${tally.stillOpen} of ${tally.retried} retried dead letters are still open`,
    }),
  } satisfies RetrySummary as RetrySummary;
});

/** What came of sending one envelope: an outcome, or why the gate never answered for it. */
type Sent = RetryOutcome | { readonly lost: string };

/** Sends the envelopes and says what came of each, in order. */
function send(
  client: IgClient["Service"],
  letters: ReadonlyArray<DeadLetter>,
): Effect.Effect<ReadonlyArray<Sent>> {
  const texts = letters.map((l) => JSON.stringify(l.envelope));
  return client.sendEach(texts).pipe(Effect.map((results) => results.map(outcomeOf)));
}

function outcomeOf(result: Decided | IgSendFailed): Sent {
  if (result instanceof IgSendFailed) {
    const { answer, requests } = result;
    if (answer.status === 0 && result.reason !== "ENVELOPE_TOO_LARGE") {
      return { lost: `${answer.error ?? "no answer"} (after ${requests} attempts)` };
    }
    return {
      outcome: "OPEN",
      decision: null,
      requests,
      lastStatus: answer.status,
      reason: result.reason,
      message: `The gate did not take it: ${result.message}`,
    };
  }
  const { requests } = result;
  const decision = result.decisions[0] ?? null;
  if (decision === "ADMIT" || decision === "DUPLICATE") {
    return { outcome: "CLOSED", decision, requests, lastStatus: 200, reason: null };
  }
  const gateReason = result.reasons[0];
  return decision === "QUARANTINE"
    ? {
      outcome: "OPEN",
      decision,
      requests,
      lastStatus: 200,
      reason: "IG_QUARANTINED",
      message: `The gate quarantined it${gateReason ? ` (${gateReason})` : ""}`,
    }
    : {
      outcome: "OPEN",
      decision,
      requests,
      lastStatus: 200,
      reason: "IG_ANSWER_UNEXPECTED",
      message: `The gate answered the decision ${decision}`,
    };
}

function lineOf(letter: DeadLetter, result: RetryOutcome): RetriedLine {
  return {
    id: letter.id,
    event_id: letter.event_id,
    output_id: letter.output_id,
    platform_run_id: letter.platform_run_id,
    status: result.outcome,
    decision: result.decision,
    last_status: result.lastStatus,
    reason: result.outcome === "CLOSED" ? null : result.reason,
    attempts: letter.attempts + result.requests,
    retries: letter.retries + 1,
    receipt_id: retryReceiptId(letter),
  };
}

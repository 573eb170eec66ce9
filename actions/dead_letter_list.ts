/**
 * Action `dead_letter_list`: the dead letters matching a filter, oldest first, one line each as
 * it is read (a listing of millions never sits in memory), then whether more are left. The WAL
 * is drained to Postgres to completion first, so a dead letter a run wrote a moment ago is listed.
 */
import { Effect, Schema } from "effect";
import {
  type DeadLetter,
  type DeadLetterFilter,
  DeadLetters,
  type DeadLetterStatus,
} from "../stores/dead_letters.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import type { WorldstreamError } from "../schemas/errors.ts";

/** Which dead letters to list. */
export interface DeadLetterListRequest {
  readonly filter: Pick<DeadLetterFilter, "runKey" | "platformRunId" | "outputId">;
  /** OPEN or CLOSED; undefined lists both. */
  readonly status?: DeadLetterStatus;
  /** At most this many. */
  readonly limit: number;
  /** Include each stored envelope in its line. */
  readonly envelopes: boolean;
  /** Keyset paging: only dead letters after this `seq` (a line's `seq`). */
  readonly afterSeq?: number;
}

/** What `dead_letter_list` answers after the lines. */
export const DeadLetterListResult = Schema.Struct({
  status: Schema.Literal("OK"),
  listed: Schema.Number,
  more: Schema.Boolean,
});

/** What `dead_letter_list` answers after the lines. */
export type DeadLetterListResult = typeof DeadLetterListResult.Type;

const PAGE = 500;

/** Lists the matching dead letters, handing each line to `onLine` as it is read. */
export const listDeadLetters = Effect.fn("listDeadLetters")(function* (
  request: DeadLetterListRequest,
  onLine: (line: Record<string, unknown>) => Effect.Effect<void>,
): Effect.fn.Return<DeadLetterListResult, WorldstreamError, WalDrain | DeadLetters> {
  yield* (yield* WalDrain).drainNow;
  const store = yield* DeadLetters;
  const { limit } = request;
  let listed = 0;
  let afterSeq = request.afterSeq ?? 0;
  let more = false;
  while (listed < limit) {
    // One row past the limit tells whether more are left.
    const page = yield* store.list({
      ...request.filter,
      ...(request.status === undefined ? {} : { status: request.status }),
      afterSeq,
      limit: Math.min(PAGE, limit - listed + 1),
    });
    const shown = page.slice(0, limit - listed);
    for (const letter of shown) yield* onLine(listLine(letter, request.envelopes));
    listed += shown.length;
    more = page.length > shown.length;
    if (page.length === 0 || more) break;
    afterSeq = page[page.length - 1].seq;
  }
  return { status: "OK", listed, more } as const;
});

function listLine(letter: DeadLetter, withEnvelope: boolean) {
  return {
    id: letter.id,
    seq: letter.seq,
    status: letter.status,
    run_key: letter.run_key,
    platform_run_id: letter.platform_run_id,
    output_id: letter.output_id,
    event_id: letter.event_id,
    attempts: letter.attempts,
    retries: letter.retries,
    last_status: letter.last_status,
    reason: letter.reason,
    at: letter.at.toISOString(),
    last_retry_at: letter.last_retry_at?.toISOString() ?? null,
    closed_at: letter.closed_at?.toISOString() ?? null,
    closed_receipt_id: letter.closed_receipt_id,
    ...(withEnvelope ? { envelope: letter.envelope } : {}),
  };
}

/**
 * Checkpointer: journals checkpoint advances from courier lanes as they arrive, each with the
 * delivery receipt that vouches for it (sequence range and ADMIT/DUPLICATE/QUARANTINE counts since
 * the output's last receipt), in one WAL append per flush.
 *
 * Flushes ride the WAL's group commit instead of a timer: a flusher starts a flush as soon as an
 * advance is pending and the previous flush's fsync has ended. While a flush is being written,
 * newer advances of the same (run scope, output) replace older pending ones, so the WAL sees at
 * most one checkpoint per output per flush: its write rate is bounded by the fsync rate, not the
 * acknowledgement rate. `advance` returns once its position (or a later one) is durable, which is
 * what lets the courier bound what a SIGKILL can make it re-send (actors/courier.ts, the ack
 * window). A failed flush releases its waiters, is logged and retried after `retryMs`; the runtime
 * flushes once more on shutdown.
 */
import { Context, Deferred, Duration, Effect, Layer, Queue, Semaphore } from "effect";
import { sha256Hex } from "../core/hash.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { ReceiptDraft } from "../schemas/receipt.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import { checkpointRecord, type OwedReceipt, type WalRecord } from "../stores/wal_records.ts";
import type { LaneStats } from "./courier.ts";
import { Journal } from "./journal.ts";

/** Cumulative delivery counts of a lane (what a delivery receipt reports the change of). */
export type DeliveryCounts = Pick<
  LaneStats,
  "admitted" | "duplicate" | "quarantined" | "deadLettered"
>;

interface Entry {
  packKey: string;
  outputId: string;
  /** First sequence not yet covered by a delivery receipt. */
  fromSeq: number;
  flushed: DeliveryCounts;
  /** When (epoch ms) this output's last delivery receipt was journaled (-∞: none yet). */
  receiptAt: number;
  /** The newest advance not yet journaled. */
  latest?: Advance;
  /** The newest advance journaled as a checkpoint. */
  journaled?: Advance;
}

interface Advance {
  readonly position: ViewPosition;
  readonly counts: DeliveryCounts;
}

const ZERO: DeliveryCounts = { admitted: 0, duplicate: 0, quarantined: 0, deadLettered: 0 };

/** Checkpoint + delivery-receipt writer riding the WAL's group commit. */
export class Checkpointer extends Context.Service<Checkpointer, {
  /** Declares a lane that resumes after `after` (or from the first row). */
  readonly register: (
    packKey: string,
    outputId: string,
    after?: ViewPosition,
    owed?: OwedReceipt,
  ) => Effect.Effect<void>;
  /**
   * Records that everything up to `position` was handled in order (`counts` are cumulative) and
   * waits until a flush holding it, or a later position, is durable in the WAL (or has failed).
   */
  readonly advance: (
    packKey: string,
    outputId: string,
    position: ViewPosition,
    counts: DeliveryCounts,
  ) => Effect.Effect<void>;
  /** Journals pending checkpoints now, with the delivery receipts they are owed. */
  readonly flush: Effect.Effect<void, WorldstreamError>;
  /**
   * Forgets an output's position (after an operator reset it, actions/checkpoint_reset.ts), so no
   * later flush journals the old one again over the reset; the next run registers afresh.
   */
  readonly forget: (packKey: string, outputId: string) => Effect.Effect<void>;
}>()("worldstream/actors/Checkpointer") {
  /** A checkpointer flushing as advances arrive, and once more when its scope closes. */
  static readonly layer = (
    options: {
      readonly retryMs?: number;
      readonly actor?: string;
      /** Shortest time between two delivery receipts of an output, in ms (1 000). */
      readonly receiptEveryMs?: number;
    } = {},
  ) =>
    Layer.effect(
      Checkpointer,
      Effect.gen(function* () {
        const journal = yield* Journal;
        const actor = options.actor ?? "svc:world_stream_producer";
        const entries = new Map<string, Entry>();
        const keyOf = (packKey: string, outputId: string) => `${packKey}\u0000${outputId}`;
        // One flush at a time, never interrupted half-way: a final flush must not find nothing
        // to do while a background flush that took the entries is being cut off.
        const permit = yield* Semaphore.make(1);
        // The next flush not yet started: every advance waits on the round that will take it.
        // It completes with true once that flush is durable, false if it failed.
        let round = Deferred.makeUnsafe<boolean>();
        // Wakes the flusher; one pending wake-up is enough however many advances arrive.
        const wake = yield* Queue.dropping<void>(1);

        const receiptEvery = options.receiptEveryMs ?? 1_000;
        // One flush: a checkpoint record per output with a pending advance, and a delivery
        // receipt per output whose journaled checkpoints are ahead of its last receipt and whose
        // last receipt is `receiptEvery` old (or on the final flush).
        const journalDue = (final: boolean) =>
          Effect.gen(function* () {
            const now = yield* journal.now;
            const receiptDue = (e: Entry) => final || now.getTime() - e.receiptAt >= receiptEvery;
            // What this flush journals, captured now: advances during the append wait for the next.
            const due = [...entries.values()].flatMap((e) => {
              const tip = e.latest ?? e.journaled;
              const receipt = tip !== undefined && tip.position.seq >= e.fromSeq && receiptDue(e);
              return e.latest !== undefined || receipt
                ? [{ e, taken: e.latest, tip: tip!, receipt }]
                : [];
            });
            if (due.length === 0) return;
            const records: WalRecord[] = [];
            const receipts: ReceiptDraft[] = [];
            for (const { e, taken, tip, receipt } of due) {
              if (receipt) {
                // The checkpoint (a new one, or the journaled one again) says it owes nothing.
                records.push(checkpointRecord(e.packKey, e.outputId, tip.position, now));
                receipts.push(deliveryReceipt(e, tip, actor));
              } else if (taken !== undefined) {
                records.push(
                  checkpointRecord(e.packKey, e.outputId, taken.position, now, owedBy(e, taken)),
                );
              }
            }
            // On failure the entries stay pending for the next flush.
            yield* journal.append(records, receipts);
            for (const { e, taken, tip, receipt } of due) {
              if (taken !== undefined) {
                e.journaled = taken;
                // An advance that arrived while journaling stays pending for the next flush.
                if (e.latest === taken) e.latest = undefined;
              }
              if (receipt) {
                e.fromSeq = tip.position.seq + 1;
                e.flushed = tip.counts;
                e.receiptAt = now.getTime();
              }
            }
            yield* Effect.logDebug("checkpoint_saved").pipe(
              Effect.annotateLogs({
                outputs: due.map(({ e, tip }) => `${e.outputId}@${tip.position.seq}`).join(","),
              }),
            );
          });
        // Whatever way a flush ends, its waiters are released: true only when it is durable.
        const flushNow = (final: boolean) =>
          Effect.suspend(() => {
            const mine = round;
            round = Deferred.makeUnsafe<boolean>();
            return journalDue(final).pipe(
              Effect.onExit((exit) => Deferred.succeed(mine, exit._tag === "Success")),
            );
          });
        const flushWith = (final: boolean) =>
          Semaphore.withPermit(permit, Effect.uninterruptible(flushNow(final)));
        const flush = flushWith(true);
        const retry = Duration.millis(options.retryMs ?? 250);
        // A failed flush, even a defect, is logged and retried: lanes wait on this fiber.
        yield* Effect.forkScoped(Effect.forever(
          Queue.take(wake).pipe(
            Effect.andThen(flushWith(false)),
            Effect.catchCause((cause) =>
              Effect.logWarning("checkpoint flush failed; will retry", cause).pipe(
                Effect.andThen(Effect.sleep(retry)),
                Effect.andThen(Queue.offer(wake, undefined)),
              )
            ),
          ),
        ));
        yield* Effect.addFinalizer(() =>
          flush.pipe(
            Effect.catch((e) => Effect.logError("final checkpoint flush failed", e.message)),
          )
        );
        return Checkpointer.of({
          register: (packKey, outputId, after, owed) =>
            Effect.sync(() => {
              // A lane (also a rerun in this process) counts from zero and starts from its
              // resume point. A receipt its checkpoint still owes (a crash came before the
              // coalesced receipt) is paid first: its counts start the entry's, so the next
              // receipt, or the final flush, covers the owed events with their answers.
              entries.set(keyOf(packKey, outputId), {
                packKey,
                outputId,
                fromSeq: owed && after ? owed.from_seq : after ? after.seq + 1 : 0,
                flushed: owed && after
                  ? {
                    admitted: -owed.admitted,
                    duplicate: -owed.duplicate,
                    quarantined: -owed.quarantined,
                    deadLettered: -owed.dead_lettered,
                  }
                  : ZERO,
                receiptAt: Number.NEGATIVE_INFINITY,
                ...(owed && after ? { journaled: { position: after, counts: ZERO } } : {}),
              });
            }),
          advance: (packKey, outputId, position, counts) =>
            Effect.suspend(() => {
              const key = keyOf(packKey, outputId);
              let e = entries.get(key);
              if (e === undefined) {
                e = {
                  packKey,
                  outputId,
                  fromSeq: 0,
                  flushed: ZERO,
                  receiptAt: Number.NEGATIVE_INFINITY,
                };
                entries.set(key, e);
              }
              if (e.latest === undefined || e.latest.position.seq < position.seq) {
                e.latest = { position, counts: { ...counts } };
              }
              // Taken in the same step as the entry changed: the round that will journal it.
              const mine = round;
              return Queue.offer(wake, undefined).pipe(
                Effect.andThen(Deferred.await(mine)),
                Effect.asVoid,
              );
            }),
          flush,
          // Under the flush permit: a flush that took the entry finishes before it goes.
          forget: (packKey, outputId) =>
            Semaphore.withPermit(
              permit,
              Effect.sync(() => void entries.delete(keyOf(packKey, outputId))),
            ),
        });
      }),
    );
}

/** What a checkpoint at `tip` owes when no receipt goes with it (see OwedReceipt). */
function owedBy(e: Entry, tip: Advance): OwedReceipt {
  return {
    from_seq: e.fromSeq,
    admitted: tip.counts.admitted - e.flushed.admitted,
    duplicate: tip.counts.duplicate - e.flushed.duplicate,
    quarantined: tip.counts.quarantined - e.flushed.quarantined,
    dead_lettered: tip.counts.deadLettered - e.flushed.deadLettered,
  };
}

/** The delivery receipt for `e`'s events from its last receipt up to `tip`. */
function deliveryReceipt(e: Entry, tip: Advance, actor: string): ReceiptDraft {
  const { position, counts } = tip;
  const delta = {
    ADMIT: counts.admitted - e.flushed.admitted,
    DUPLICATE: counts.duplicate - e.flushed.duplicate,
    QUARANTINE: counts.quarantined - e.flushed.quarantined,
  };
  const deadLettered = counts.deadLettered - e.flushed.deadLettered;
  return {
    kind: "delivery",
    status: delta.QUARANTINE > 0 || deadLettered > 0 ? "warn" : "pass",
    rationale: `${e.outputId}: events ${e.fromSeq}..${position.seq} handled in order`,
    badges: [
      ...(delta.QUARANTINE > 0 ? ["quarantined"] : []),
      ...(deadLettered > 0 ? ["dead_lettered"] : []),
    ],
    inputs_digest: sha256Hex(`${e.packKey}|${e.outputId}|${e.fromSeq}|${position.seq}`),
    actor,
    run_key: e.packKey,
    output_id: e.outputId,
    detail: {
      sequence_from: e.fromSeq,
      sequence_to: position.seq,
      events: position.seq - e.fromSeq + 1,
      counts: delta,
      dead_lettered: deadLettered,
      checkpoint: { ...position },
    },
  };
}

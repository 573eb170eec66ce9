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
import { checkpointRecord, type WalRecord } from "../stores/wal_records.ts";
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
  latest?: { position: ViewPosition; counts: DeliveryCounts };
}

const ZERO: DeliveryCounts = { admitted: 0, duplicate: 0, quarantined: 0, deadLettered: 0 };

/** Checkpoint + delivery-receipt writer riding the WAL's group commit. */
export class Checkpointer extends Context.Service<Checkpointer, {
  /** Declares a lane that resumes after `after` (or from the first row). */
  readonly register: (
    packKey: string,
    outputId: string,
    after?: ViewPosition,
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
  /** Journals pending checkpoints now. */
  readonly flush: Effect.Effect<void, WorldstreamError>;
}>()("worldstream/actors/Checkpointer") {
  /** A checkpointer flushing as advances arrive, and once more when its scope closes. */
  static readonly layer = (
    options: { readonly retryMs?: number; readonly actor?: string } = {},
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

        const journalDue = Effect.gen(function* () {
          // What this flush journals, captured now: advances during the append wait for the next.
          const due = [...entries.values()].flatMap((e) =>
            e.latest ? [{ e, taken: e.latest }] : []
          );
          if (due.length === 0) return;
          const now = yield* journal.now;
          const records: WalRecord[] = [];
          const receipts: ReceiptDraft[] = [];
          for (const { e, taken } of due) {
            const { position, counts } = taken;
            records.push(checkpointRecord(e.packKey, e.outputId, position, now));
            const delta = {
              ADMIT: counts.admitted - e.flushed.admitted,
              DUPLICATE: counts.duplicate - e.flushed.duplicate,
              QUARANTINE: counts.quarantined - e.flushed.quarantined,
            };
            const deadLettered = counts.deadLettered - e.flushed.deadLettered;
            receipts.push({
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
            });
          }
          // On failure the entries stay pending for the next flush.
          yield* journal.append(records, receipts);
          for (const { e, taken } of due) {
            // An advance that arrived while journaling stays pending for the next flush.
            if (e.latest === taken) e.latest = undefined;
            e.fromSeq = taken.position.seq + 1;
            e.flushed = taken.counts;
          }
          yield* Effect.logDebug("checkpoint_saved").pipe(
            Effect.annotateLogs({
              outputs: due.map(({ e }) => `${e.outputId}@${e.fromSeq - 1}`).join(","),
            }),
          );
        });
        // Whatever way a flush ends, its waiters are released: true only when it is durable.
        const flushNow = Effect.suspend(() => {
          const mine = round;
          round = Deferred.makeUnsafe<boolean>();
          return journalDue.pipe(
            Effect.onExit((exit) => Deferred.succeed(mine, exit._tag === "Success")),
          );
        });
        const flush = Semaphore.withPermit(permit, Effect.uninterruptible(flushNow));
        const retry = Duration.millis(options.retryMs ?? 250);
        // A failed flush, even a defect, is logged and retried: lanes wait on this fiber.
        yield* Effect.forkScoped(Effect.forever(
          Queue.take(wake).pipe(
            Effect.andThen(flush),
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
          register: (packKey, outputId, after) =>
            Effect.sync(() => {
              const key = keyOf(packKey, outputId);
              if (!entries.has(key)) {
                entries.set(key, {
                  packKey,
                  outputId,
                  fromSeq: after ? after.seq + 1 : 0,
                  flushed: ZERO,
                });
              } else {
                // A new lane for the same output (a rerun in this process) counts from zero.
                const e = entries.get(key)!;
                e.flushed = ZERO;
                if (e.latest === undefined) e.fromSeq = after ? after.seq + 1 : e.fromSeq;
              }
            }),
          advance: (packKey, outputId, position, counts) =>
            Effect.suspend(() => {
              const key = keyOf(packKey, outputId);
              let e = entries.get(key);
              if (e === undefined) {
                e = { packKey, outputId, fromSeq: 0, flushed: ZERO };
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
        });
      }),
    );
}

/**
 * Checkpointer: takes checkpoint advances from courier lanes without blocking them, keeps the
 * latest per (run scope, output), and on each flush journals them — a checkpoint record plus a
 * delivery receipt (sequence range and ADMIT/DUPLICATE/QUARANTINE counts since the last flush)
 * per output — in one WAL append. Lanes never wait on the flush; a failed flush is retried on
 * the next tick, and the runtime flushes once more on shutdown.
 */
import { Context, Effect, Layer, Schedule, Semaphore } from "effect";
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

/** Coalescing checkpoint + delivery-receipt writer. */
export class Checkpointer extends Context.Service<Checkpointer, {
  /** Declares a lane that resumes after `after` (or from the first row). */
  readonly register: (
    packKey: string,
    outputId: string,
    after?: ViewPosition,
  ) => Effect.Effect<void>;
  /** Records that everything up to `position` was handled in order; `counts` are cumulative. */
  readonly advance: (
    packKey: string,
    outputId: string,
    position: ViewPosition,
    counts: DeliveryCounts,
  ) => Effect.Effect<void>;
  /** Journals pending checkpoints now. */
  readonly flush: Effect.Effect<void, WorldstreamError>;
}>()("worldstream/actors/Checkpointer") {
  /** A checkpointer flushing every `intervalMs`, and once more when its scope closes. */
  static readonly layer = (
    options: { readonly intervalMs?: number; readonly actor?: string } = {},
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

        const flushNow = Effect.gen(function* () {
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
        const flush = Semaphore.withPermit(permit, Effect.uninterruptible(flushNow));
        yield* Effect.forkScoped(
          flush.pipe(
            Effect.catch((e) =>
              Effect.logWarning("checkpoint flush failed; will retry", e.message)
            ),
            Effect.repeat(Schedule.spaced(`${options.intervalMs ?? 250} millis`)),
          ),
        );
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
            Effect.sync(() => {
              const key = keyOf(packKey, outputId);
              let e = entries.get(key);
              if (e === undefined) {
                e = { packKey, outputId, fromSeq: 0, flushed: ZERO };
                entries.set(key, e);
              }
              if (e.latest === undefined || e.latest.position.seq < position.seq) {
                e.latest = { position, counts: { ...counts } };
              }
            }),
          flush,
        });
      }),
    );
}

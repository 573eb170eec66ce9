/**
 * Checkpointer: takes checkpoint advances from courier lanes without blocking them, keeps the
 * latest per (run scope, output), and writes them to Postgres in one statement per flush. Lanes
 * never wait on the database; a flush failure is logged and retried on the next tick, and the
 * runtime flushes once more on shutdown.
 */
import { Clock, Context, Effect, Layer, Schedule, Semaphore } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { type Checkpoint, saveCheckpoints } from "../stores/checkpoints.ts";
import type { Postgres } from "../stores/postgres.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";

/** Coalescing checkpoint writer. */
export class Checkpointer extends Context.Service<Checkpointer, {
  /** Records that everything up to `position` was delivered (in order) for this output. */
  readonly advance: (
    packKey: string,
    outputId: string,
    position: ViewPosition,
  ) => Effect.Effect<void>;
  /** Writes pending checkpoints now. */
  readonly flush: Effect.Effect<void, WorldstreamError>;
}>()("worldstream/actors/Checkpointer") {
  /** A checkpointer flushing every `intervalMs`, and once more when its scope closes. */
  static readonly layer = (intervalMs = 250) =>
    Layer.effect(
      Checkpointer,
      Effect.gen(function* () {
        const pg = yield* Effect.context<Postgres>();
        const dirty = new Map<string, Checkpoint>();
        // One flush at a time, never interrupted half-way: a final flush must not find the map
        // empty while a background flush that took its entries is being cut off.
        const permit = yield* Semaphore.make(1);
        const flushNow = Effect.gen(function* () {
          if (dirty.size === 0) return;
          const batch = [...dirty.values()];
          dirty.clear();
          yield* saveCheckpoints(batch).pipe(
            Effect.provideContext(pg),
            // Put them back unless a newer advance arrived meanwhile; the next flush retries.
            Effect.tapError(() =>
              Effect.sync(() => {
                for (const c of batch) {
                  const key = `${c.packKey}\u0000${c.outputId}`;
                  const now = dirty.get(key);
                  if (now === undefined || now.position.seq < c.position.seq) dirty.set(key, c);
                }
              })
            ),
          );
          yield* Effect.logDebug("checkpoint_saved").pipe(
            Effect.annotateLogs({
              outputs: batch.map((c) => `${c.outputId}@${c.position.seq}`).join(","),
            }),
          );
        });
        const flush = Semaphore.withPermit(permit, Effect.uninterruptible(flushNow));
        yield* Effect.forkScoped(
          flush.pipe(
            Effect.catch((e) =>
              Effect.logWarning("checkpoint flush failed; will retry", e.message)
            ),
            Effect.repeat(Schedule.spaced(`${intervalMs} millis`)),
          ),
        );
        yield* Effect.addFinalizer(() =>
          flush.pipe(
            Effect.catch((e) => Effect.logError("final checkpoint flush failed", e.message)),
          )
        );
        return Checkpointer.of({
          advance: (packKey, outputId, position) =>
            Clock.currentTimeMillis.pipe(Effect.map((ms) => {
              const key = `${packKey}\u0000${outputId}`;
              const prev = dirty.get(key);
              if (prev === undefined || prev.position.seq < position.seq) {
                dirty.set(key, { packKey, outputId, position, at: new Date(ms) });
              }
            })),
          flush,
        });
      }),
    );
}

/**
 * ControlBus listener on Kinesis: reads READY envelopes from every shard of the profile's stream
 * and hands each to the READY path the file listener uses (actors/control_bus.ts).
 *
 * Per shard, records are settled one at a time, in sequence order, and only a settled record's
 * sequence number is saved (through the WAL, actors/bus_positions.ts), so no position ever passes
 * a record that was not handled. A shard is read from TRIM_HORIZON the first time, then
 * AFTER_SEQUENCE_NUMBER of its saved position; a restart neither misses nor re-handles a message.
 *
 * - Malformed records (not UTF-8, not JSON, not an envelope, an invalid READY) are settled FAILED
 *   in the READY ledger with their reason, under `kinesis:<stream>/<shard>/<sequence>` when they
 *   carry no message id, and the shard reads on.
 * - A READY deferred (IG unreachable, ledger unavailable) or stopped by the operator is not
 *   settled: the shard stops before it and reads it again after `deferRetryMs` (a stop: on the
 *   next start), so the later messages of that shard wait behind it, in order.
 * - Paging follows NextShardIterator; a throttled read (CONTROL_BUS_THROTTLED) backs that shard
 *   off exponentially (200 ms doubling, at most 5 s) while the others read on; an expired
 *   iterator (CONTROL_BUS_ITERATOR_EXPIRED) is re-acquired after the last settled record.
 * - Resharding: a shard split or merged from others is read only once its parents are closed
 *   and read to their end (or gone from the stream past its retention), so the messages of one
 *   partition key keep their order across a split or merge.
 */
import { Clock, Effect, Layer, Schedule } from "effect";
import type { ReadyContext } from "../core/ready.ts";
import { supervised } from "../core/supervise.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import {
  KinesisBus,
  type KinesisRecord,
  type KinesisShard,
} from "../stores/control_bus_kinesis.ts";
import { BusPositions, type ShardPosition } from "./bus_positions.ts";
import { ControlBus, makeReadyHandler, type ReadySettlement } from "./control_bus.ts";

/** How often every shard is read when the profile does not say (`control_bus.poll_interval_ms`). */
export const KINESIS_POLL_INTERVAL_MS = 1000;

/** Options of the Kinesis listener. */
export interface KinesisListenerOptions {
  readonly context: ReadyContext;
  readonly pollIntervalMs?: number;
  /** Pause before a deferred READY is read again (5 s). */
  readonly deferRetryMs?: number;
  /** Records per GetRecords (100). */
  readonly pageLimit?: number;
  /** Iterators to read shards from first, instead of their saved positions (tests: an expired one). */
  readonly startIterators?: ReadonlyMap<string, string>;
  /**
   * A stream that does not exist at start: `fail` the runtime (CONTROL_BUS_STREAM_MISSING,
   * the default, as `backend` mode wants) or `wait` for it, read again every poll (`edge` mode:
   * the runtime serves degraded, and reads the stream from its start once it exists).
   */
  readonly streamMissing?: "fail" | "wait";
}

interface Cursor {
  iterator: string | undefined;
  blockedUntil: number;
  throttled: number;
}

/** Pages one shard may read per poll before the others get their turn. */
const MAX_PAGES = 20;

/** The Kinesis control bus listener, polling while its scope is open. */
export function kinesisControlBus(options: KinesisListenerOptions) {
  return Layer.effect(
    ControlBus,
    Effect.gen(function* () {
      const ready = yield* makeReadyHandler(options.context);
      const bus = yield* KinesisBus;
      const store = yield* BusPositions;
      const stream = bus.stream;
      const deferRetryMs = options.deferRetryMs ?? 5000;
      const pageLimit = options.pageLimit ?? 100;
      let positions: Map<string, ShardPosition> | undefined;
      let caughtUp = false;
      let settledRecords = 0;
      const cursors = new Map<string, Cursor>();
      for (const [shardId, iterator] of options.startIterators ?? []) {
        cursors.set(shardId, { iterator, blockedUntil: 0, throttled: 0 });
      }
      const cursorOf = (shardId: string) => {
        let c = cursors.get(shardId);
        if (c === undefined) {
          c = { iterator: undefined, blockedUntil: 0, throttled: 0 };
          cursors.set(shardId, c);
        }
        return c;
      };

      // A stream that does not exist is a wrong profile: the runtime does not start (unless
      // told to wait for it). One that does not answer yet is read again at every poll.
      yield* bus.check.pipe(
        Effect.catchIf(
          (e) => e.reason !== "CONTROL_BUS_STREAM_MISSING" || options.streamMissing === "wait",
          (e) =>
            Effect.logWarning("degraded: the Kinesis control bus did not answer").pipe(
              Effect.annotateLogs({ reason: e.reason, error: e.message }),
            ),
        ),
      );

      const save = (shardId: string, position: ShardPosition) =>
        store.save(stream, shardId, position).pipe(
          Effect.tap(() => Effect.sync(() => positions!.set(shardId, position))),
        );

      /**
       * Settles one record and saves its position; false when it is not settled (the shard must
       * stop before it). Waiters hear of it only once its position is durable, so a `run --once`
       * that exits at once does not leave the record to be read again.
       */
      const settleRecord = (shardId: string, record: KinesisRecord) =>
        Effect.gen(function* () {
          const fallbackId = `kinesis:${stream}/${shardId}/${record.sequenceNumber}`;
          const readAt = yield* Clock.currentTimeMillis;
          yield* Effect.logInfo("control bus record").pipe(
            Effect.annotateLogs({
              stream,
              shard_id: shardId,
              sequence_number: record.sequenceNumber,
              // How long it waited on the stream before this read (the poll interval's share).
              ...(record.arrivedAt === undefined ? {} : { lag_ms: readAt - record.arrivedAt }),
            }),
          );
          const text = utf8(record.data);
          // Once the record is settled (its ledger entry written), its position is saved before
          // anything can stop the listener: a stop (SIGTERM closing the scope) between the two
          // would leave a settled record to be read, and handled, again after a restart.
          const [settlement, done] = yield* Effect.uninterruptibleMask((restore) =>
            restore(
              ready.handle(
                fallbackId,
                text,
                text === undefined ? "Record data is not valid UTF-8" : undefined,
              ),
            ).pipe(
              Effect.flatMap((settlement: ReadySettlement) => {
                const done = settlement.status !== "DEFERRED_DOWNSTREAM_NOT_READY" &&
                  settlement.reason !== "STOPPED_BY_OPERATOR";
                return (done
                  ? save(shardId, { sequenceNumber: record.sequenceNumber, finished: false })
                  : Effect.void).pipe(Effect.as([settlement, done] as const));
              }),
            )
          );
          if (done) settledRecords += 1;
          yield* ready.announce(settlement);
          return done;
        });

      /** Reads one shard from its cursor; returns whether it reached the tip (or its end). */
      const readShard = (shard: KinesisShard, now: number) =>
        Effect.gen(function* () {
          const id = shard.shardId;
          const c = cursorOf(id);
          let position = positions!.get(id) ?? { sequenceNumber: undefined, finished: false };
          let iterator = c.iterator ?? (yield* bus.iterator(id, position.sequenceNumber));
          let renewed = false;
          for (let pages = 0; pages < MAX_PAGES; pages++) {
            const got = yield* bus.records(id, iterator, pageLimit).pipe(Effect.result);
            if (got._tag === "Failure") {
              const e = got.failure;
              if (e.reason === "CONTROL_BUS_ITERATOR_EXPIRED" && !renewed) {
                yield* Effect.logWarning("shard iterator expired; re-acquired").pipe(
                  Effect.annotateLogs({
                    reason: e.reason,
                    stream,
                    shard_id: id,
                    after: position.sequenceNumber ?? "TRIM_HORIZON",
                  }),
                );
                renewed = true;
                iterator = yield* bus.iterator(id, position.sequenceNumber);
                continue;
              }
              if (e.reason === "CONTROL_BUS_THROTTLED") {
                c.throttled += 1;
                const pause = Math.min(5000, 200 * 2 ** (c.throttled - 1));
                c.blockedUntil = now + pause;
                c.iterator = iterator;
                yield* Effect.logWarning("shard read throttled; backing off").pipe(
                  Effect.annotateLogs({ reason: e.reason, stream, shard_id: id, pause_ms: pause }),
                );
                return false;
              }
              c.iterator = undefined;
              return yield* Effect.fail(e);
            }
            c.throttled = 0;
            const page = got.success;
            for (const record of page.records) {
              if (!(yield* settleRecord(id, record))) {
                // Read again from the last settled record after a pause.
                c.iterator = undefined;
                c.blockedUntil = (yield* Clock.currentTimeMillis) + deferRetryMs;
                return false;
              }
              position = { sequenceNumber: record.sequenceNumber, finished: false };
            }
            if (page.next === undefined) {
              yield* save(id, { ...position, finished: true });
              c.iterator = undefined;
              yield* Effect.logInfo("closed shard read to its end").pipe(
                Effect.annotateLogs({ stream, shard_id: id }),
              );
              return true;
            }
            iterator = page.next;
            c.iterator = iterator;
            if (page.records.length === 0 && (page.millisBehindLatest ?? 0) === 0) return true;
          }
          return false;
        });

      const pollOnce: Effect.Effect<number, WorldstreamError> = Effect.gen(function* () {
        if (positions === undefined) positions = yield* store.load(stream);
        const known = positions;
        const now = yield* Clock.currentTimeMillis;
        const shards = yield* bus.shards;
        const listed = new Set(shards.map((s) => s.shardId));
        const finished = (id: string) => !listed.has(id) || known.get(id)?.finished === true;
        const visited = new Set<string>();
        const before = settledRecords;
        let atTip = true;
        // Parents first: a pass that finishes a shard makes its children readable in the next.
        for (let progress = true; progress;) {
          progress = false;
          for (const shard of shards) {
            const id = shard.shardId;
            if (visited.has(id) || known.get(id)?.finished === true) continue;
            if (!shard.parents.every(finished)) {
              atTip = false;
              continue;
            }
            visited.add(id);
            if (cursorOf(id).blockedUntil > now) {
              atTip = false;
              continue;
            }
            const tip = yield* readShard(shard, now);
            atTip &&= tip;
            if (known.get(id)?.finished === true) progress = true;
          }
        }
        if (atTip && !caughtUp) {
          caughtUp = true;
          yield* Effect.logInfo("control bus read to its tip").pipe(
            Effect.annotateLogs({ stream, shards: shards.length }),
          );
        }
        return settledRecords - before;
      });

      yield* Effect.forkScoped(supervised(
        "control_bus",
        pollOnce.pipe(
          Effect.catch((e) =>
            Effect.logError("control bus poll failed").pipe(
              Effect.annotateLogs({ reason: e.reason, error: e.message }),
            )
          ),
          Effect.repeat(
            Schedule.spaced(`${options.pollIntervalMs ?? KINESIS_POLL_INTERVAL_MS} millis`),
          ),
        ),
      ));
      return ControlBus.of({ pollOnce, settled: ready.settled, submit: ready.submit });
    }),
  );
}

function utf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

/**
 * Where the Kinesis control bus listener resumes: per shard, the sequence number of the last
 * record it settled and whether the shard was read to its end. Saved through the WAL (kind
 * `bus_position`, one fsync per save) and drained into `ws_control_bus_positions`, like
 * checkpoints; loaded as the later of Postgres and any undrained WAL record, so a restart
 * neither misses nor re-handles a message even when the drain had not run.
 *
 * Loading needs Postgres: with it down and nothing in the WAL, the positions are unknown and the
 * listener waits rather than read the stream from its start again (PG_UNAVAILABLE, retried).
 */
import { Clock, Context, Effect, Layer } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import { type BusPositionBody, walRecord } from "../stores/wal_records.ts";
import { Wal } from "./wal/writer.ts";

/** How far one shard is settled. */
export interface ShardPosition {
  /** The last record settled; undefined before any. */
  readonly sequenceNumber: string | undefined;
  /** Closed and read to its end. */
  readonly finished: boolean;
}

const LOAD = pgQuery("bus_position_load");

/** The control bus positions of the runs root. */
export class BusPositions extends Context.Service<BusPositions, {
  /** Every shard's position on `stream`. */
  readonly load: (
    stream: string,
  ) => Effect.Effect<Map<string, ShardPosition>, WorldstreamError>;
  /** Journals a shard's position; returns once it is durable in the WAL. */
  readonly save: (
    stream: string,
    shardId: string,
    position: ShardPosition,
  ) => Effect.Effect<void, WorldstreamError>;
}>()("worldstream/actors/BusPositions") {
  static readonly layer: Layer.Layer<BusPositions, never, Wal | Postgres> = Layer.effect(
    BusPositions,
    Effect.gen(function* () {
      const wal = yield* Wal;
      const pg = yield* Postgres;
      const load = Effect.fn("BusPositions.load")(function* (stream: string) {
        const out = new Map<string, ShardPosition>();
        const rows = yield* pg.query<
          { shard_id: string; sequence_number: string | null; finished: boolean }
        >(LOAD, [stream]);
        for (const r of rows) {
          out.set(r.shard_id, {
            sequenceNumber: r.sequence_number ?? undefined,
            finished: r.finished === true,
          });
        }
        for (const record of yield* wal.pending) {
          if (record.kind !== "bus_position") continue;
          const b = record.body as unknown as BusPositionBody;
          if (b.stream !== stream) continue;
          out.set(
            b.shard_id,
            furthest(out.get(b.shard_id), {
              sequenceNumber: b.sequence_number ?? undefined,
              finished: b.finished,
            }),
          );
        }
        return out;
      });
      const save = Effect.fn("BusPositions.save")(function* (
        stream: string,
        shardId: string,
        position: ShardPosition,
      ) {
        const at = new Date(yield* Clock.currentTimeMillis);
        yield* wal.append([walRecord("bus_position", {
          stream,
          shard_id: shardId,
          sequence_number: position.sequenceNumber ?? null,
          finished: position.finished,
        }, at)]);
      });
      return BusPositions.of({ load, save });
    }),
  );
}

/** The further of two positions of one shard. */
export function furthest(a: ShardPosition | undefined, b: ShardPosition): ShardPosition {
  if (a === undefined) return b;
  const seq = (p: ShardPosition) => BigInt(p.sequenceNumber ?? "-1");
  return {
    sequenceNumber: seq(a) >= seq(b) ? a.sequenceNumber : b.sequenceNumber,
    finished: a.finished || b.finished,
  };
}

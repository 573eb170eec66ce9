/**
 * Checkpoints in Postgres: per (run scope, output), the position of the last event delivered in
 * order (the platform's `{last_file, last_row_index, last_ts_utc}` plus the view sequence), and
 * the delivery receipt it is still owed, if any. They are written by the WAL drain
 * (sql/postgres/queries/checkpoint_save.sql, forward-only); this module reads them.
 */
import { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "./postgres.ts";
import type { ViewPosition } from "./stream_view_read.ts";
import { decodeOwedReceipt, type OwedReceipt } from "./wal_records.ts";

const LOAD = pgQuery("checkpoint_load");

/** A stored checkpoint: where the output resumes, and the receipt its events are owed. */
export interface StoredCheckpoint {
  readonly position: ViewPosition;
  readonly owed: OwedReceipt | undefined;
}

/** The stored checkpoint, or `undefined` when the output has not delivered anything in this scope. */
export function loadStoredCheckpoint(
  packKey: string,
  outputId: string,
): Effect.Effect<StoredCheckpoint | undefined, WorldstreamError, Postgres> {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const rows = yield* pg.query<{
      last_seq: number;
      last_file: string;
      last_row_index: number;
      last_ts_utc: string;
      receipt_owed: unknown;
    }>(LOAD, [packKey, outputId]);
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      position: {
        seq: Number(r.last_seq),
        filename: r.last_file,
        file_row_number: Number(r.last_row_index),
        ts_utc: r.last_ts_utc,
      },
      owed: r.receipt_owed === null || r.receipt_owed === undefined
        ? undefined
        : yield* decodeOwedReceipt(
          typeof r.receipt_owed === "string" ? JSON.parse(r.receipt_owed) : r.receipt_owed,
        ),
    };
  });
}

/** The stored checkpoint's position (see {@link loadStoredCheckpoint}). */
export function loadCheckpoint(
  packKey: string,
  outputId: string,
): Effect.Effect<ViewPosition | undefined, WorldstreamError, Postgres> {
  return Effect.map(loadStoredCheckpoint(packKey, outputId), (c) => c?.position);
}

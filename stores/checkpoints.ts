/**
 * Checkpoints in Postgres: per (run scope, output), the position of the last event delivered in
 * order (the platform's `{last_file, last_row_index, last_ts_utc}` plus the view sequence).
 */
import { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "./postgres.ts";
import type { ViewPosition } from "./stream_view_read.ts";

/** One output's checkpoint. */
export interface Checkpoint {
  readonly packKey: string;
  readonly outputId: string;
  readonly position: ViewPosition;
  readonly at: Date;
}

const LOAD = pgQuery("checkpoint_load");
const SAVE = pgQuery("checkpoint_save");

/** The stored checkpoint, or `undefined` when the output has not delivered anything in this scope. */
export function loadCheckpoint(
  packKey: string,
  outputId: string,
): Effect.Effect<ViewPosition | undefined, WorldstreamError, Postgres> {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const rows = yield* pg.query<{
      last_seq: number;
      last_file: string;
      last_row_index: number;
      last_ts_utc: string;
    }>(LOAD, [packKey, outputId]);
    const r = rows[0];
    return r === undefined ? undefined : {
      seq: Number(r.last_seq),
      filename: r.last_file,
      file_row_number: Number(r.last_row_index),
      ts_utc: r.last_ts_utc,
    };
  });
}

/** Upserts checkpoints in one statement; none moves backwards. */
export function saveCheckpoints(
  checkpoints: ReadonlyArray<Checkpoint>,
): Effect.Effect<void, WorldstreamError, Postgres> {
  if (checkpoints.length === 0) return Effect.void;
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.query(SAVE, [
      checkpoints.map((c) => c.packKey),
      checkpoints.map((c) => c.outputId),
      checkpoints.map((c) => c.position.seq),
      checkpoints.map((c) => c.position.filename),
      checkpoints.map((c) => c.position.file_row_number),
      checkpoints.map((c) => c.position.ts_utc),
      checkpoints.map((c) => c.at.toISOString()),
    ]);
  });
}

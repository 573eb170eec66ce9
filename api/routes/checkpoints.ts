/**
 * `GET /v1/checkpoints?run=&output=&limit=`: the last event each output delivered in order, per
 * run scope (pack key), most recently advanced first. The WAL is drained to Postgres first, so
 * a checkpoint journaled a moment ago shows.
 */
import { Effect, Schema } from "effect";
import { WalDrain } from "../../actors/wal/drain.ts";
import { pgQuery, Postgres } from "../../stores/postgres.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { Id, Limit } from "./params.ts";

const CHECKPOINTS = pgQuery("admin_checkpoints");

/** One checkpoint. */
export const CheckpointRow = Schema.Struct({
  /** The run scope (pack key): `run` in `/v1/runs/{run}`. */
  run_key: Schema.String,
  output_id: Schema.String,
  /** The last delivered event's sequence in the view. */
  last_seq: Schema.Int,
  last_file: Schema.NullOr(Schema.String),
  last_row_index: Schema.NullOr(Schema.Int),
  last_ts_utc: Schema.NullOr(Schema.String),
  updated_at: Schema.String,
}).annotate({ identifier: "Checkpoint" });
export type CheckpointRow = typeof CheckpointRow.Type;

interface Row {
  readonly pack_key: string;
  readonly output_id: string;
  readonly last_seq: number | string;
  readonly last_file: string | null;
  readonly last_row_index: number | string | null;
  readonly last_ts_utc: string | null;
  readonly updated_at_utc: Date | string;
}

/** Checkpoints matching the filter, after draining the WAL. */
export function checkpointRows(filter: { runKey?: string; outputId?: string; limit: number }) {
  return Effect.gen(function* () {
    yield* (yield* WalDrain).drainNow;
    const rows = yield* (yield* Postgres).query<Row>(CHECKPOINTS, [
      filter.runKey ?? null,
      filter.outputId ?? null,
      filter.limit,
    ]);
    return rows.map((r): CheckpointRow => ({
      run_key: r.pack_key,
      output_id: r.output_id,
      last_seq: Number(r.last_seq),
      last_file: r.last_file,
      last_row_index: r.last_row_index === null ? null : Number(r.last_row_index),
      last_ts_utc: r.last_ts_utc,
      updated_at: new Date(r.updated_at_utc).toISOString(),
    }));
  });
}

/** `GET /v1/checkpoints`. */
export const checkpointsRoutes: RouteModule = {
  name: "checkpoints",
  routes: [jsonRoute({
    method: "get",
    path: "/v1/checkpoints",
    summary: "Each output's checkpoint per run scope, most recently advanced first",
    query: Schema.Struct({
      run: Schema.optionalKey(Id),
      output: Schema.optionalKey(Id),
      limit: Schema.optionalKey(Limit),
    }),
    response: Schema.Struct({ checkpoints: Schema.Array(CheckpointRow) }),
    handle: ({ query }) =>
      checkpointRows({
        ...(query.run === undefined ? {} : { runKey: query.run }),
        ...(query.output === undefined ? {} : { outputId: query.output }),
        limit: query.limit ?? 500,
      }).pipe(Effect.map((checkpoints) => ({ checkpoints }))),
  })],
};

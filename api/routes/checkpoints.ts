/**
 * `GET /v1/checkpoints?run=&output=&limit=`: the last event each output delivered in order, per
 * run scope (pack key), most recently advanced first, with the cursor its last reset replaced.
 * The WAL is drained to Postgres first, so a checkpoint journaled a moment ago shows.
 *
 * `POST /v1/checkpoints/{scope}/{output}/reset` `{to_seq | to_ts}` moves one (the cursor it
 * replaces is kept) and `POST .../undo` moves it back to that cursor: actions/checkpoint_reset.ts,
 * authorized through the one door as `checkpoint.reset` for the token's principal; HIGH risk, so
 * the shipped policy parks it: 202 `{approval_id, status: "PENDING", ...}` (api/routes/approvals.ts).
 */
import { Effect, Schema } from "effect";
import { WalDrain } from "../../actors/wal/drain.ts";
import {
  CheckpointResetAnswer,
  Cursor as ResetCursor,
  governedCheckpointReset,
} from "../../actions/checkpoint_reset.ts";
import { Parked } from "../../actions/governed.ts";
import { pgQuery, Postgres } from "../../stores/postgres.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { asking, parkedStatus } from "./approvals.ts";
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
  /** The cursor the last reset replaced (what `undo` goes back to); null when never reset. */
  previous: Schema.NullOr(ResetCursor),
  /** When it was last reset; null when never. */
  reset_at: Schema.NullOr(Schema.String),
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
  readonly previous_seq: number | string | null;
  readonly previous_file: string | null;
  readonly previous_row_index: number | string | null;
  readonly previous_ts_utc: string | null;
  readonly reset_at_utc: Date | string | null;
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
      previous: r.previous_seq === null ? null : {
        seq: Number(r.previous_seq),
        ts_utc: r.previous_ts_utc ?? "",
        file: r.previous_file ?? "",
        row_index: Number(r.previous_row_index ?? 0),
      },
      reset_at: r.reset_at_utc === null ? null : new Date(r.reset_at_utc).toISOString(),
    }));
  });
}

const Scope = Schema.Struct({ scope: Id, output: Id });
const SeqBound = Schema.Number.check(
  Schema.makeFilter((n: number) => Number.isSafeInteger(n) && n >= 0, {
    expected: "a non-negative integer",
  }),
);

/** `GET /v1/checkpoints`, `POST /v1/checkpoints/{scope}/{output}/reset` and `.../undo`. */
export const checkpointsRoutes: RouteModule = {
  name: "checkpoints",
  routes: [
    jsonRoute({
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
    }),
    jsonRoute({
      method: "post",
      path: "/v1/checkpoints/{scope}/{output}/reset",
      summary:
        "Move a checkpoint to view row to_seq, or to the last event before to_ts (exactly one); the cursor it replaces is kept for undo",
      params: Scope,
      body: Schema.Struct({
        /** The view row that becomes the last delivered (the next stream re-sends from after it). */
        to_seq: Schema.optionalKey(SeqBound),
        /** The last event before this UTC time becomes the last delivered. */
        to_ts: Schema.optionalKey(Schema.String),
      }),
      response: Schema.Union([CheckpointResetAnswer, Parked]),
      status: parkedStatus,
      handle: ({ params, body, principal }) =>
        asking(principal, (who) =>
          governedCheckpointReset(
            { run_key: params.scope, output_id: params.output, ...body },
            who,
          )),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/checkpoints/{scope}/{output}/undo",
      summary: "Move a checkpoint back to the cursor its last reset replaced (undo that reset)",
      params: Scope,
      response: Schema.Union([CheckpointResetAnswer, Parked]),
      status: parkedStatus,
      handle: ({ params, principal }) =>
        asking(principal, (who) =>
          governedCheckpointReset(
            { run_key: params.scope, output_id: params.output, undo: true },
            who,
          )),
    }),
  ],
};

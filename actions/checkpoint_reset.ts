/**
 * Action `checkpoint_reset`: moves one output's checkpoint in one run scope to another row of its
 * stream view — `to_seq` (that row becomes the last delivered: the next stream of the scope
 * re-sends from `to_seq + 1`), or `to_ts` (the last event before that time) — or, with `undo`,
 * back to the cursor the last reset replaced. The cursor it replaces is kept, so every reset can
 * be undone (and an undo redone).
 *
 * Checkpoints otherwise only move forward, so a reset is its own WAL record (`checkpoint_reset`)
 * that the drain applies unconditionally in WAL order, the WAL's checkpoint index and
 * `resumePoint` let win over a higher saved position (actors/wal/), and the Checkpointer forgets
 * its in-memory position of the output. A `checkpoint_reset` receipt goes with it, in the same
 * Journal append.
 *
 * Refused, with nothing changed: by the policy (`checkpoint.reset` through the one door,
 * before anything else), while the output streams in that scope, for an unknown checkpoint, for
 * a target outside the view, and for a checkpoint still owed a delivery receipt (a crash came
 * first; resetting it would lose that receipt: stream the scope once to pay it).
 *
 * Shared by the admin API (`POST /v1/checkpoints/{scope}/{output}/reset` and `.../undo`).
 */
import { Effect, Option, Schema } from "effect";
import { Checkpointer } from "../actors/checkpointer.ts";
import { authorize } from "../actors/governance.ts";
import { Journal } from "../actors/journal.ts";
import { OutputLocks } from "../actors/output_locks.ts";
import { RunConfig } from "../actors/run_config.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { sha256Hex } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import { viewDir } from "../stores/stream_view_build.ts";
import { checkView, streamViewId, type ViewPosition } from "../stores/stream_view_read.ts";
import { canonicalTs, type PositionTarget, seekPosition } from "../stores/view_seek.ts";
import { walRecord } from "../stores/wal_records.ts";
import { resolveWorld } from "../stores/world.ts";
import { type Asker, governed } from "./governed.ts";

const LOAD = pgQuery("checkpoint_load");

/** Whether a checkpoint of `outputId` exists in scope `scope` (after draining the WAL). */
export const checkpointExists = Effect.fn("checkpointExists")(function* (
  scope: string,
  outputId: string,
) {
  yield* (yield* WalDrain).drainNow;
  const [row] = yield* (yield* Postgres).query(LOAD, [scope, outputId]);
  return row !== undefined;
});
const SCOPE_START = pgQuery("checkpoint_scope_start");

const NonEmpty = Schema.String.check(Schema.isMinLength(1));

/** Where to move the checkpoint: exactly one of `to_seq`, `to_ts` and `undo`. */
export const CheckpointResetRequest = Schema.Struct({
  /** The run scope (pack key): `run_key` in `GET /v1/checkpoints`. */
  run_key: NonEmpty,
  output_id: NonEmpty,
  /** The view row that becomes the last delivered one (0-based). */
  to_seq: Schema.optionalKey(Schema.Number),
  /** The last event before this UTC time becomes the last delivered one. */
  to_ts: Schema.optionalKey(Schema.String),
  /** Back to the cursor the last reset replaced. */
  undo: Schema.optionalKey(Schema.Literal(true)),
});
export type CheckpointResetRequest = typeof CheckpointResetRequest.Type;

/** A checkpoint position: the last delivered event's view row, time and source row. */
export const Cursor = Schema.Struct({
  seq: Schema.Number,
  ts_utc: Schema.String,
  file: Schema.String,
  row_index: Schema.Number,
}).annotate({ identifier: "CheckpointCursor" });
export type Cursor = typeof Cursor.Type;

/** A reset done: where the checkpoint was (kept for undo) and where it is now. */
export const CheckpointResetAnswer = Schema.Struct({
  run_key: Schema.String,
  output_id: Schema.String,
  previous: Cursor,
  current: Cursor,
  /** The `checkpoint_reset` receipt. */
  receipt_id: Schema.String,
});
export type CheckpointResetAnswer = typeof CheckpointResetAnswer.Type;

/** Who asks, and through what (`api`, `cli`): the policy decides on both. */
export interface CheckpointResetOptions {
  readonly principal: string;
  readonly source: string;
}

interface LoadedRow {
  readonly last_seq: number | string;
  readonly last_file: string;
  readonly last_row_index: number | string;
  readonly last_ts_utc: string;
  readonly receipt_owed: unknown;
  readonly previous_seq: number | string | null;
  readonly previous_file: string | null;
  readonly previous_row_index: number | string | null;
  readonly previous_ts_utc: string | null;
}

const cursorOf = (p: ViewPosition): Cursor => ({
  seq: p.seq,
  ts_utc: p.ts_utc,
  file: p.filename,
  row_index: p.file_row_number,
});

/** Resets (or undoes the last reset of) one checkpoint; see the module header. */
export const checkpointReset = Effect.fn("checkpointReset")(function* (
  request: CheckpointResetRequest,
  options: CheckpointResetOptions,
) {
  const config = yield* RunConfig;
  const { run_key: scope, output_id: outputId } = request;
  const label = `Checkpoint of ${outputId} in ${scope}`;
  yield* authorize(options.principal, "checkpoint.reset", {
    profile: config.profile,
    source: options.source,
    runKey: scope,
    request: { ...request },
    detail: {
      output_id: outputId,
      ...(request.to_seq === undefined ? {} : { to_seq: request.to_seq }),
      ...(request.to_ts === undefined ? {} : { to_ts: request.to_ts }),
      ...(request.undo === undefined ? {} : { undo: true }),
    },
  });
  const target = yield* targetOf(request, label);
  const busy = fail(
    "CHECKPOINT_OUTPUT_STREAMING",
    `${label}: ${outputId} is streaming in that scope now; pause is not enough, let it end or cancel it`,
  );
  // Read and moved under the output's lock: a run that holds it (from before it reads the
  // checkpoint until it ends) refuses the reset; a run starting now waits until it is written.
  const moved = yield* (yield* OutputLocks).ifFree(
    scope,
    outputId,
    Effect.gen(function* () {
      // Everything journaled so far into Postgres: the row read is the output's position now.
      yield* (yield* WalDrain).drainNow;
      const pg = yield* Postgres;
      const [row] = yield* pg.query<LoadedRow>(LOAD, [scope, outputId]);
      if (row === undefined) {
        return yield* fail("CHECKPOINT_UNKNOWN", `${label}: no such checkpoint`);
      }
      if (row.receipt_owed !== null && row.receipt_owed !== undefined) {
        return yield* fail(
          "CHECKPOINT_RECEIPT_OWED",
          `${label}: it still owes a delivery receipt; stream the scope once to pay it, then reset`,
        );
      }
      const current: ViewPosition = {
        seq: Number(row.last_seq),
        filename: row.last_file,
        file_row_number: Number(row.last_row_index),
        ts_utc: row.last_ts_utc,
      };
      let next: ViewPosition;
      if (target === "undo") {
        if (row.previous_seq === null || row.previous_seq === undefined) {
          return yield* fail(
            "CHECKPOINT_NO_PREVIOUS",
            `${label}: it was never reset, nothing to undo`,
          );
        }
        next = {
          seq: Number(row.previous_seq),
          filename: row.previous_file ?? "",
          file_row_number: Number(row.previous_row_index ?? 0),
          ts_utc: row.previous_ts_utc ?? "",
        };
      } else {
        next = yield* positionInView(scope, outputId, target, label);
      }

      const journal = yield* Journal;
      const now = yield* journal.now;
      const body = {
        pack_key: scope,
        output_id: outputId,
        last_seq: next.seq,
        last_file: next.filename,
        last_row_index: next.file_row_number,
        last_ts_utc: next.ts_utc,
        previous: {
          last_seq: current.seq,
          last_file: current.filename,
          last_row_index: current.file_row_number,
          last_ts_utc: current.ts_utc,
        },
        actor: options.principal,
      };
      const [receipt] = yield* journal.append([walRecord("checkpoint_reset", body, now)], [{
        kind: "checkpoint_reset",
        status: "pass",
        rationale: `${outputId}: checkpoint moved from event ${current.seq} to ${next.seq}${
          target === "undo" ? " (undo of the last reset)" : ""
        }`,
        badges: target === "undo" ? ["checkpoint_reset", "undo"] : ["checkpoint_reset"],
        inputs_digest: sha256Hex(
          `${scope}|${outputId}|${current.seq}|${next.seq}|${now.getTime()}`,
        ),
        actor: options.principal,
        run_key: scope,
        output_id: outputId,
        detail: {
          from: cursorOf(current),
          to: cursorOf(next),
          undo: target === "undo",
          ...(request.to_seq === undefined ? {} : { to_seq: request.to_seq }),
          ...(request.to_ts === undefined ? {} : { to_ts: request.to_ts }),
        },
      }]);
      yield* (yield* Checkpointer).forget(scope, outputId);
      yield* Effect.logInfo("checkpoint_reset").pipe(Effect.annotateLogs({
        run_key: scope,
        output_id: outputId,
        from_seq: current.seq,
        to_seq: next.seq,
        actor: options.principal,
      }));
      // Into Postgres at once, so the listing shows it; the WAL holds it if Postgres is down.
      yield* (yield* WalDrain).drainNow.pipe(
        Effect.catch((e) => Effect.logWarning("checkpoint reset not drained yet", e.message)),
      );
      return {
        run_key: scope,
        output_id: outputId,
        previous: cursorOf(current),
        current: cursorOf(next),
        receipt_id: receipt.receipt_id,
      } satisfies CheckpointResetAnswer;
    }),
  );
  if (Option.isNone(moved)) return yield* busy;
  return moved.value;
});

/**
 * The reset through the door that can park it (actions/governed.ts): a malformed request fails
 * first (CHECKPOINT_RESET_INVALID), then the policy runs it, parks it (REQUIRE_APPROVAL: the
 * shipped policy's answer to an operator, the action being HIGH risk) or refuses it.
 */
export const governedCheckpointReset = (request: CheckpointResetRequest, who: Asker) =>
  Effect.gen(function* () {
    yield* targetOf(request, `Checkpoint of ${request.output_id} in ${request.run_key}`);
    return yield* governed(
      "checkpoint.reset",
      { ...request },
      { ...who, runKey: request.run_key },
      checkpointReset(request, { principal: who.principal, source: who.source }),
    );
  });

/** The request's target, checked: a view row, a time, or the undo. */
function targetOf(
  request: CheckpointResetRequest,
  label: string,
): Effect.Effect<"undo" | PositionTarget, WorldstreamError> {
  const given = [request.to_seq, request.to_ts, request.undo].filter((v) => v !== undefined);
  if (given.length !== 1) {
    return Effect.fail(fail(
      "CHECKPOINT_RESET_INVALID",
      `${label}: give exactly one of to_seq, to_ts and undo (${given.length} given)`,
    ));
  }
  if (request.undo) return Effect.succeed("undo" as const);
  if (request.to_seq !== undefined) {
    if (!Number.isSafeInteger(request.to_seq) || request.to_seq < 0) {
      return Effect.fail(fail(
        "CHECKPOINT_RESET_INVALID",
        `${label}: to_seq ${request.to_seq} is not a non-negative integer`,
      ));
    }
    return Effect.succeed<PositionTarget>({ seq: request.to_seq });
  }
  const ts = canonicalTs(request.to_ts!);
  if (ts === undefined) {
    return Effect.fail(fail(
      "CHECKPOINT_RESET_INVALID",
      `${label}: to_ts ${
        JSON.stringify(request.to_ts)
      } is not a UTC time like 2026-01-02T03:04:05Z`,
    ));
  }
  return Effect.succeed<PositionTarget>({ before_ts: ts });
}

/**
 * The position `target` names in the scope's view of `outputId`: the world comes from the
 * scope's newest run_start receipt, its view from the profile's view root (a local view).
 */
function positionInView(scope: string, outputId: string, target: PositionTarget, label: string) {
  return Effect.scoped(Effect.gen(function* () {
    const config = yield* RunConfig;
    const pg = yield* Postgres;
    const [start] = yield* pg.query<{ body: unknown }>(SCOPE_START, [scope]);
    const body = (typeof start?.body === "string" ? JSON.parse(start.body) : start?.body) as
      | { detail?: { engine_run_root?: unknown; scenario_id?: unknown } }
      | undefined;
    const root = body?.detail?.engine_run_root;
    if (typeof root !== "string") {
      return yield* fail(
        "CHECKPOINT_UNKNOWN",
        `${label}: no run_start receipt names the scope's world`,
      );
    }
    const { profile } = config;
    const scenario = body?.detail?.scenario_id;
    const world = yield* resolveWorld(root, {
      strict: profile.policy.strict_world,
      requireGatePass: false,
      interfacePackDir: profile.paths.interfacePack,
      ...(typeof scenario === "string" ? { scenarioId: scenario } : {}),
    });
    const dir = viewDir(config.streamViewRoot(world.engineRunRoot), outputId);
    const { rowCount, parts } = yield* checkView(dir, {
      streamViewId: streamViewId({
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId,
      }),
      outputId,
      world: { engineRunId: world.runReceipt.run_id, worldKey: world.worldKey },
    });
    const session = yield* (yield* DuckDb).session;
    return yield* seekPosition(session, parts, rowCount, target, label);
  }));
}

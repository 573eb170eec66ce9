/**
 * Messages between actors and the results they return. A run request arrives from the control
 * bus (READY) or an operator (CLI, API); a stream result is what a run ends as.
 */
import { Schema } from "effect";
import { JsonObject } from "./common.ts";

/**
 * The world a request vouches for (a READY's and its run facts' pins): the world on disk must be
 * this one, or the run fails WORLD_KEY_MISMATCH before anything is sent.
 */
export const RunPinned = Schema.Struct({
  manifest_fingerprint: Schema.String,
  parameter_hash: Schema.String,
  seed: Schema.optionalKey(Schema.Number),
  scenario_id: Schema.String,
  oracle_pack_id: Schema.optionalKey(Schema.String),
});
export type RunPinned = typeof RunPinned.Type;

/**
 * A replay: one window of one output, half-open on ts_utc (`[from_ts, to_ts)`) or on the view's
 * sequence (`[from_seq, to_seq)`), streamed in a checkpoint scope of its own (its replay id), so
 * it never moves the checkpoint of the world's own stream.
 */
export const ReplayWindow = Schema.Struct({
  replay_id: Schema.String,
  from_ts: Schema.optionalKey(Schema.String),
  to_ts: Schema.optionalKey(Schema.String),
  from_seq: Schema.optionalKey(Schema.Number),
  to_seq: Schema.optionalKey(Schema.Number),
});
export type ReplayWindow = typeof ReplayWindow.Type;

/** Ask the supervisor to stream (part of) a world. */
export const RunRequested = Schema.TaggedStruct("RunRequested", {
  source: Schema.Literals(["ready", "operator"]),
  engine_run_root: Schema.optionalKey(Schema.String),
  scenario_id: Schema.optionalKey(Schema.String),
  platform_run_id: Schema.optionalKey(Schema.String),
  scenario_run_id: Schema.optionalKey(Schema.String),
  output_ids: Schema.optionalKey(Schema.Array(Schema.String)),
  max_events: Schema.optionalKey(Schema.Number),
  max_events_per_output: Schema.optionalKey(Schema.Number),
  speedup: Schema.optionalKey(Schema.Number),
  message_id: Schema.optionalKey(Schema.String),
  pins: Schema.optionalKey(RunPinned),
  /**
   * Who asks for the run, as the capability policy knows them: `agent:<sender>` for a READY,
   * `user:<name>` for an admin-API token; unset: the runtime itself (`svc:<producer>`).
   */
  principal: Schema.optionalKey(Schema.String),
  /** Only this window of the (single) output in `output_ids`: a replay. */
  replay: Schema.optionalKey(ReplayWindow),
  /**
   * The READY envelope as submitted (what `POST /v1/runs` takes), set by the READY path: when the
   * policy asks for an approval of the run's `wsp.stream`, the plan step parks it with this.
   */
  ready: Schema.optionalKey(JsonObject),
  /**
   * The approval this READY is streamed under (set by the READY path only when an approved,
   * parked READY is submitted again by its runner, actions/approval_runners.ts).
   */
  approval: Schema.optionalKey(Schema.Struct({ approval_id: Schema.String, by: Schema.String })),
});
export type RunRequested = typeof RunRequested.Type;

/** Percentiles of a latency in milliseconds. */
const LatencySummary = Schema.Struct({
  count: Schema.Number,
  p50_ms: Schema.Number,
  p99_ms: Schema.Number,
  max_ms: Schema.Number,
});

/** Per-output outcome inside a stream result. */
export const OutputResult = Schema.Struct({
  output_id: Schema.String,
  status: Schema.Literals(["STREAMED", "FAILED", "STOPPED"]),
  emitted: Schema.Number,
  admitted: Schema.Number,
  duplicate: Schema.Number,
  quarantined: Schema.Number,
  /** Envelopes stored as dead letters (the output went on past them only under `continue`). */
  dead_lettered: Schema.Number,
  resumed_from_seq: Schema.NullOr(Schema.Number),
  reason: Schema.NullOr(Schema.String),
  /** Pacing lateness (hand-over to the courier − due) in ms, when paced. */
  lateness: Schema.optionalKey(LatencySummary),
  /** Send lag (IG request start − due) in ms, when paced: lateness plus waiting for the IG. */
  send_lag: Schema.optionalKey(LatencySummary),
});
export type OutputResult = typeof OutputResult.Type;

/**
 * The platform's StreamResult, plus the platform run id and per-output detail. Beyond the
 * platform's STREAMED|FAILED: STREAMED_WITH_DEAD_LETTERS, every event handled but some only as
 * dead letters (reason DEAD_LETTERED; `dead-letters retry` re-posts them); CANCELLED, an
 * operator cancelled the run (reason RUN_CANCELLED): what was in flight was delivered and
 * checkpointed, the rest was not sent.
 */
export const StreamResult = Schema.Struct({
  status: Schema.Literals(["STREAMED", "STREAMED_WITH_DEAD_LETTERS", "FAILED", "CANCELLED"]),
  emitted: Schema.Number,
  /** Envelopes of this run stored as dead letters (absent when the run never streamed). */
  dead_lettered: Schema.optionalKey(Schema.Number),
  reason: Schema.NullOr(Schema.String),
  message: Schema.optionalKey(Schema.String),
  output_ids: Schema.Array(Schema.String),
  engine_run_root: Schema.NullOr(Schema.String),
  scenario_id: Schema.NullOr(Schema.String),
  platform_run_id: Schema.NullOr(Schema.String),
  outputs: Schema.optionalKey(Schema.Array(OutputResult)),
  /** Wall time of the streaming phase (after checks and views), ms. */
  elapsed_ms: Schema.optionalKey(Schema.Number),
});
export type StreamResult = typeof StreamResult.Type;

/** Live progress of one output of a run in flight. */
export const OutputProgressInfo = Schema.Struct({
  output_id: Schema.String,
  total: Schema.Number,
  emitted: Schema.Number,
  admitted: Schema.Number,
  duplicate: Schema.Number,
  quarantined: Schema.Number,
  retries: Schema.Number,
  lateness: LatencySummary,
  run_id: Schema.optionalKey(Schema.String),
});

/** Where a run stands: in flight (queued, running, paused, cancelling) or finished. */
export const RunState = Schema.Literals(["queued", "running", "paused", "cancelling", "finished"]);
export type RunState = typeof RunState.Type;

/** A run the Supervisor holds: in flight, or among the last ones it finished. */
export const RunInfo = Schema.Struct({
  /** The Supervisor's id for it (a replay's is its replay id). */
  run_id: Schema.String,
  kind: Schema.Literals(["run", "replay"]),
  state: RunState,
  /** The checkpoint scope, once planned. */
  run_key: Schema.NullOr(Schema.String),
  platform_run_id: Schema.NullOr(Schema.String),
  output_ids: Schema.Array(Schema.String),
  /** A replay's window per output, `[from_seq, to_seq)` of the view. */
  windows: Schema.Array(Schema.Struct({
    output_id: Schema.String,
    from_seq: Schema.Number,
    to_seq: Schema.Number,
  })),
  submitted_at_utc: Schema.String,
  progress: Schema.Array(OutputProgressInfo),
  /** Once finished: its status and reason. */
  status: Schema.NullOr(StreamResult.fields.status),
  reason: Schema.NullOr(Schema.String),
});
export type RunInfo = typeof RunInfo.Type;

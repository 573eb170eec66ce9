/**
 * Messages between actors and the results they return. A run request arrives from the control
 * bus (READY) or an operator (CLI, API); a stream result is what a run ends as.
 */
import { Schema } from "effect";

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
 * dead letters (reason DEAD_LETTERED; `dead-letters retry` re-posts them).
 */
export const StreamResult = Schema.Struct({
  status: Schema.Literals(["STREAMED", "STREAMED_WITH_DEAD_LETTERS", "FAILED"]),
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

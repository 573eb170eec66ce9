/**
 * A stream view's two files (no schema file; the platform's format, see CONTRACTS.md):
 * `_stream_view_manifest.json` says what the view is, `_stream_sort_receipt.json` proves it was
 * sorted completely (raw and sorted stats agree). Both are closed objects.
 *
 * The receipt also lists what identifies each source part (`sources`), so a view whose sources
 * were rewritten after it was built is refused instead of streamed.
 *
 * `hash_sum`/`hash_sum2` are sums of 64-bit hashes, beyond 2^53, so they travel as decimal
 * strings; min/max ts are null for an empty output.
 */
import { Schema } from "effect";
import { Hex32, Hex64, NonEmptyString, NonNegativeInt } from "./common.ts";
import { WorldKey } from "./oracle_pack.ts";

/** The only sort order: time, then source file, then row within the file. */
export const STREAM_SORT_KEYS = ["ts_utc", "filename", "file_row_number"] as const;

/** `sort_keys`: exactly `["ts_utc", "filename", "file_row_number"]`. */
export const StreamSortKeys = Schema.Tuple([
  Schema.Literal("ts_utc"),
  Schema.Literal("filename"),
  Schema.Literal("file_row_number"),
]);
export type StreamSortKeys = typeof StreamSortKeys.Type;

/** `partition_granularity`: worldstream writes flat views (parts in one folder). */
export const PartitionGranularity = Schema.Literal("flat");
export type PartitionGranularity = typeof PartitionGranularity.Type;

const DecimalString = Schema.String.check(
  Schema.isPattern(/^(0|[1-9][0-9]*)$/, { expected: "a non-negative decimal integer string" }),
);
const OutputIds = Schema.Array(NonEmptyString).check(Schema.isMinLength(1));

/** Row count, order-independent hash sums and the time range of one side of a sort. */
export const StreamSortStats = Schema.Struct({
  row_count: NonNegativeInt,
  hash_sum: DecimalString,
  hash_sum2: DecimalString,
  min_ts_utc: Schema.NullOr(Schema.String),
  max_ts_utc: Schema.NullOr(Schema.String),
});
export type StreamSortStats = typeof StreamSortStats.Type;

/**
 * What identifies one source part when its view was built: its path relative to the engine run
 * root, its size, its modification time and the sha256 of its parquet footer (the file
 * metadata: schema, row groups, their statistics and offsets). A part rewritten after the
 * build differs in at least one of them, so the view is known stale without reading its rows.
 */
export const StreamViewSource = Schema.Struct({
  path: NonEmptyString,
  size: NonNegativeInt,
  mtime_utc: NonEmptyString,
  footer_sha256: Hex64,
});
export type StreamViewSource = typeof StreamViewSource.Type;

/** `_stream_view_manifest.json`: the view's id, roots, world and sort order. */
export const StreamViewManifest = Schema.Struct({
  stream_view_id: Hex64,
  engine_run_root: NonEmptyString,
  stream_view_root: NonEmptyString,
  engine_run_id: Hex32,
  scenario_id: NonEmptyString,
  output_id: NonEmptyString,
  world_key: WorldKey,
  output_ids: OutputIds,
  sort_keys: StreamSortKeys,
  partition_granularity: PartitionGranularity,
  created_utc: NonEmptyString,
});
export type StreamViewManifest = typeof StreamViewManifest.Type;

/** `_stream_sort_receipt.json`: written last; its presence means the view is complete. */
export const StreamSortReceipt = Schema.Struct({
  stream_view_id: Hex64,
  engine_run_root: NonEmptyString,
  stream_view_root: NonEmptyString,
  output_id: NonEmptyString,
  output_ids: OutputIds,
  sort_keys: StreamSortKeys,
  partition_granularity: PartitionGranularity,
  source_locator_digest: Hex64,
  /** Each source part's identity, in path order (worldstream's addition to the format). */
  sources: Schema.Array(StreamViewSource).check(Schema.isMinLength(1)),
  raw_stats: StreamSortStats,
  sorted_stats: StreamSortStats,
  created_utc: NonEmptyString,
  status: Schema.Literal("OK"),
});
export type StreamSortReceipt = typeof StreamSortReceipt.Type;

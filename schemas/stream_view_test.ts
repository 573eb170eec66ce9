import assert from "node:assert/strict";
import { StreamSortReceipt, StreamSortStats, StreamViewManifest } from "./stream_view.ts";
import { accepted, fixture, isAccepted, rejection, withoutKey, withValue } from "./_testing.ts";

const manifest = fixture("worldstream/stream_view_manifest.json");
const receipt = fixture("worldstream/stream_sort_receipt.json");

Deno.test("a stream view manifest and its sort receipt are accepted", () => {
  assert.deepEqual(accepted(StreamViewManifest, manifest).sort_keys, [
    "ts_utc",
    "filename",
    "file_row_number",
  ]);
  assert.equal(accepted(StreamSortReceipt, receipt).raw_stats.hash_sum, "39012345678901234567");
});

Deno.test("the sort keys must be exactly ts_utc, filename, file_row_number", () => {
  for (
    const keys of [["ts_utc", "file_row_number", "filename"], ["ts_utc", "filename"], [
      "ts_utc",
      "filename",
      "file_row_number",
      "x",
    ]]
  ) {
    assert.match(
      rejection(StreamSortReceipt, withValue(receipt, "sort_keys", keys)),
      /^input: sort_keys\[[123]\]: /,
      keys.join(),
    );
  }
});

Deno.test("only flat, OK views are accepted", () => {
  assert.match(
    rejection(StreamViewManifest, withValue(manifest, "partition_granularity", "bucket")),
    /^input: partition_granularity: Expected "flat"/,
  );
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "status", "FAILED")),
    /^input: status: Expected "OK"/,
  );
});

Deno.test("hash sums are decimal strings, because they exceed 2^53", () => {
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "raw_stats.hash_sum", 3.9e19)),
    /^input: raw_stats\.hash_sum: Expected string/,
  );
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "sorted_stats.hash_sum2", "None")),
    /^input: sorted_stats\.hash_sum2: Expected a non-negative decimal/,
  );
  assert.equal(
    isAccepted(
      StreamSortReceipt,
      withValue(receipt, "raw_stats.hash_sum", "340282366920938463463374607431768211455"),
    ),
    true,
  );
});

Deno.test("an empty output has zero rows and null time bounds", () => {
  const empty = { row_count: 0, hash_sum: "0", hash_sum2: "0", min_ts_utc: null, max_ts_utc: null };
  assert.deepEqual(accepted(StreamSortStats, empty), empty);
  assert.match(rejection(StreamSortStats, { ...empty, row_count: -1 }), /^input: row_count: /);
  assert.equal(
    rejection(StreamSortStats, withoutKey(empty, "min_ts_utc")),
    "input: min_ts_utc: Missing required key",
  );
});

Deno.test("stream view files are closed and list at least one output", () => {
  assert.match(
    rejection(StreamViewManifest, withValue(manifest, "extra", true)),
    /^input: extra: Unexpected key/,
  );
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "raw_stats.extra", 1)),
    /^input: raw_stats\.extra: Unexpected key/,
  );
  assert.match(
    rejection(StreamViewManifest, withValue(manifest, "output_ids", [])),
    /^input: output_ids: /,
  );
  assert.match(
    rejection(StreamViewManifest, withValue(manifest, "engine_run_id", "X".repeat(32))),
    /^input: engine_run_id: /,
  );
});

Deno.test("a sort receipt lists at least one source part, each with size, time and footer digest", () => {
  assert.match(rejection(StreamSortReceipt, withoutKey(receipt, "sources")), /^input: sources: /);
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "sources", [])),
    /^input: sources: /,
  );
  assert.match(
    rejection(StreamSortReceipt, withValue(receipt, "sources.0.footer_sha256", "x")),
    /^input: sources\[0\]\.footer_sha256: /,
  );
});

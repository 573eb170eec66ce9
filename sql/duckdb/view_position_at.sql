-- The sort key of one row of a stream view: the $offset-th row (0-based) from $anchor_ts on. The
-- caller picks $anchor_ts at a clean row-group boundary whose first row has a known sequence
-- (stores/view_seek.ts), so `ts_utc >= $anchor_ts` skips every row group before it from its
-- statistics and the offset stays within a row group or so. A scan of the parts in list order
-- keeps the view's order (preserve_insertion_order), so OFFSET counts rows in view order.
SELECT ts_utc, filename, file_row_number::DOUBLE AS file_row_number
FROM read_parquet($files, hive_partitioning = false)
WHERE ts_utc >= $anchor_ts
LIMIT 1 OFFSET $offset

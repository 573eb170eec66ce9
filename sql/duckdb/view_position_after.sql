-- The sort key of the $offset-th row (0-based) strictly after the position ($after_ts,
-- $after_file, $after_row) of a stream view: a replay window's last row, counted from the row
-- before the window that stores/view_seek.ts has just found. `ts_utc >= $after_ts` skips every
-- row group before that position from its statistics, so DuckDB reads the window's sort keys
-- only, never the view's start. A scan of the parts in list order keeps the view's order.
SELECT ts_utc, filename, file_row_number::DOUBLE AS file_row_number
FROM read_parquet($files, hive_partitioning = false)
WHERE ts_utc >= $after_ts
  AND (ts_utc > $after_ts
    OR filename > $after_file
    OR (filename = $after_file AND file_row_number > $after_row))
LIMIT 1 OFFSET $offset

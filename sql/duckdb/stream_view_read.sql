-- Rows of a stream view strictly after a position (ts_utc, filename, file_row_number), in view
-- order. The view is sorted by exactly that key, so `ts_utc >= $after_ts` lets DuckDB skip every
-- row group before the position from its min/max statistics: resuming near the end of a view
-- does not rescan what came before. A scan of parquet files in list order keeps file order
-- (preserve_insertion_order), so no ORDER BY — and no re-sort — is needed.
-- Start of view: $after_ts = '' (less than any timestamp). Hive partitioning is off so the view's
-- `output_id=<id>/` folder does not turn into an extra column.
SELECT *
FROM read_parquet($files, hive_partitioning = false)
WHERE ts_utc >= $after_ts
  AND (ts_utc > $after_ts
    OR filename > $after_file
    OR (filename = $after_file AND file_row_number > $after_row))

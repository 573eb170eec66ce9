-- Sorted stats of a built stream view, compared with the raw stats of its sources
-- (see stream_view_raw_stats.sql): same row count, same hash sums, same min/max ts_utc.
SELECT
  count(*) AS row_count,
  CAST(sum(hash(filename, file_row_number)) AS VARCHAR) AS hash_sum,
  CAST(sum(hash(ts_utc, filename, file_row_number)) AS VARCHAR) AS hash_sum2,
  min(ts_utc) AS min_ts_utc,
  max(ts_utc) AS max_ts_utc
FROM read_parquet($files, hive_partitioning = false)

-- Raw stats of an output's source parts, taken before sorting.
-- One pass over ts_utc and the virtual provenance columns only (no payload columns are read), so
-- it costs a fraction of the sort. The same stats are taken again over the sorted view and must
-- match: row_count and the two hash sums prove no row was lost, duplicated or moved to another
-- timestamp. hash_sum covers provenance (file relative to the run root, row in file); hash_sum2
-- also covers ts_utc. `$prefix_len` strips the absolute run root from `filename`.
-- Bad timestamps are counted here so the build fails before it writes anything.
SELECT
  count(*) AS row_count,
  count(*) - count(ts_utc) AS null_ts,
  count(*) FILTER (
    WHERE NOT (ts_utc LIKE '____-__-__T__:__:__.______Z')
      OR try_strptime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ') IS NULL
  ) AS bad_ts,
  CAST(sum(hash(substr(filename, $prefix_len), file_row_number)) AS VARCHAR) AS hash_sum,
  CAST(sum(hash(ts_utc, substr(filename, $prefix_len), file_row_number)) AS VARCHAR) AS hash_sum2,
  min(ts_utc) AS min_ts_utc,
  max(ts_utc) AS max_ts_utc
FROM read_parquet($files, hive_partitioning = false)

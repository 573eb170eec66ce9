-- The event-time span of a view's first n+1 rows (the bench picks a speedup from it).
SELECT
  (SELECT ts_utc FROM read_parquet($files, hive_partitioning = false) LIMIT 1) AS first,
  (SELECT ts_utc FROM read_parquet($files, hive_partitioning = false) OFFSET $n LIMIT 1) AS last

-- Rows of a stream view with $anchor_ts <= ts_utc < $ts. The caller picks $anchor_ts at a clean
-- row-group boundary at or before $ts (stores/view_seek.ts), so both bounds prune by row-group
-- statistics: DuckDB reads only the row groups between the anchor and $ts, never the view's start.
SELECT count(*)::DOUBLE AS n
FROM read_parquet($files, hive_partitioning = false)
WHERE ts_utc >= $anchor_ts AND ts_utc < $ts

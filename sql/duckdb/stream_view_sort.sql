-- The stream view: every source row, plus its provenance, globally ordered by
-- (ts_utc, filename, file_row_number). Ties on ts_utc keep the engine's own file/row order, so
-- the order is total and the same on every build. `filename` is stored relative to the engine
-- run root so a view stays valid when the world is moved or read from an S3 cache.
-- Hive partitioning is off: the engine's `seed=…/scenario_id=…` folders must not add or override
-- columns (the payload is the row as written). The outer COPY target is added by the caller
-- (COPY targets cannot be parameters).
SELECT *, substr(filename, $prefix_len) AS filename, file_row_number
FROM read_parquet($files, hive_partitioning = false)
ORDER BY ts_utc, filename, file_row_number

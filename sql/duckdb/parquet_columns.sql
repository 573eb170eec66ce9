-- Column names and types of a parquet file, in order (readers map chunk columns to row fields).
-- Hive partitioning is off: a view lives under `output_id=<id>/`, and DuckDB would otherwise add
-- that folder name as an `output_id` column that is not part of the source row.
DESCRIBE SELECT * FROM read_parquet($files, hive_partitioning = false)

-- Row count of parquet files from their footers alone (no data pages are read): the cheap
-- check that a stream view still matches its receipt before a build is skipped.
SELECT coalesce(sum(num_rows), 0) AS row_count FROM parquet_file_metadata($files)

-- The column holding the most bytes in a single row group of $files, read from the parquet
-- footers only (no data is loaded): when DuckDB runs out of memory on a huge value, this names
-- the column that most likely holds it.
SELECT path_in_schema, total_uncompressed_size AS bytes
FROM parquet_metadata($files)
ORDER BY total_uncompressed_size DESC
LIMIT 1

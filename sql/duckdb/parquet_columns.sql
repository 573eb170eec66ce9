-- Column names of a parquet file, in order (the reader maps chunk columns to row fields).
DESCRIBE SELECT * FROM read_parquet($files)

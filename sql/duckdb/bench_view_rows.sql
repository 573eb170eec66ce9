-- The number of rows of a stream view (the replay bench places its windows by it).
SELECT count(*)::BIGINT AS n FROM read_parquet($files, hive_partitioning = false)

-- The declared type of ts_utc across an output's parts: it must be VARCHAR holding RFC 3339
-- micros (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), as the row schemas say, so text order is time order.
DESCRIBE SELECT ts_utc FROM read_parquet($files, hive_partitioning = false)

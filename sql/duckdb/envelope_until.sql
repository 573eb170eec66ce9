-- The end of a bounded envelope read (sql/duckdb/envelope_rows.sql fills its UNTIL placeholder
-- with this clause): rows up to and including the position ($until_ts, $until_file, $until_row),
-- a replay window's last row. The plain `ts_utc <= $until_ts` conjunct is what DuckDB pushes into
-- the parquet scan, so every row group whose min ts_utc is later is skipped from its statistics;
-- the rest keeps rows that share the last row's ts_utc but come after it out of the window.
AND ts_utc <= $until_ts
  AND (ts_utc < $until_ts
    OR filename < $until_file
    OR (filename = $until_file AND file_row_number <= $until_row))

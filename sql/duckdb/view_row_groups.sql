-- The row groups of a stream view's parts, in view order, from the parquet footers alone (no
-- data page is read): each one's row count and its ts_utc min/max statistics. stores/view_seek.ts
-- turns them into a map of the view: which sequence numbers each row group holds, and which row
-- groups start on a clean boundary (their first ts_utc is later than everything before them), so
-- a position can be found by seeking to such a boundary and reading at most a row group or two.
-- Parts are listed in lexicographic order, which is the view's; file_name sorts the same way.
SELECT
  file_name,
  row_group_id,
  row_group_num_rows::DOUBLE AS num_rows,
  coalesce(stats_min_value, stats_min) AS min_ts,
  coalesce(stats_max_value, stats_max) AS max_ts
FROM parquet_metadata($files)
WHERE path_in_schema = 'ts_utc'
ORDER BY file_name, row_group_id

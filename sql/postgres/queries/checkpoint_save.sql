-- Upserts many checkpoints in one statement (arrays, one element per output). A checkpoint only
-- moves forward: an update with a lower or equal last_seq is ignored, so a late or replayed
-- write can never move it back past events already delivered.
insert into ws_checkpoints
  (pack_key, output_id, last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc)
select * from unnest(
  $1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[]
)
on conflict (pack_key, output_id) do update set
  last_seq = excluded.last_seq,
  last_file = excluded.last_file,
  last_row_index = excluded.last_row_index,
  last_ts_utc = excluded.last_ts_utc,
  updated_at_utc = excluded.updated_at_utc
where ws_checkpoints.last_seq < excluded.last_seq

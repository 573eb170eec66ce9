-- Upserts many checkpoints in one statement (arrays, one element per output). A checkpoint only
-- moves forward: an update with a lower last_seq is ignored, so a late or replayed write can
-- never move it back past events already delivered; at an equal last_seq only a write that owes
-- no receipt applies (the receipt was paid since). receipt_owed travels as JSON text ('' for
-- none: the server client binds text arrays, not jsonb arrays).
insert into ws_checkpoints
  (pack_key, output_id, last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc,
   receipt_owed)
select p, o, s, f, r, t, u, nullif(w, '')::jsonb from unnest(
  $1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[],
  $8::text[]
) as x(p, o, s, f, r, t, u, w)
on conflict (pack_key, output_id) do update set
  last_seq = excluded.last_seq,
  last_file = excluded.last_file,
  last_row_index = excluded.last_row_index,
  last_ts_utc = excluded.last_ts_utc,
  updated_at_utc = excluded.updated_at_utc,
  receipt_owed = excluded.receipt_owed
where ws_checkpoints.last_seq < excluded.last_seq
  or (ws_checkpoints.last_seq = excluded.last_seq and excluded.receipt_owed is null)

-- Applies checkpoint resets (one element per output, the last reset of each in a drained batch):
-- unlike checkpoint_save.sql this moves the checkpoint wherever the reset says, backwards too, and
-- keeps the cursor it replaced as previous_* (taken by the action when it asked, carried in the
-- WAL record, so replaying the record writes the same row). A reset pays no receipt it is owed:
-- the action refuses a checkpoint that still owes one.
-- $1 pack keys, $2 output ids, $3 last_seq, $4 last_file, $5 last_row_index, $6 last_ts_utc,
-- $7 previous_seq, $8 previous_file, $9 previous_row_index, $10 previous_ts_utc, $11 at
insert into ws_checkpoints
  (pack_key, output_id, last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc,
   receipt_owed, previous_seq, previous_file, previous_row_index, previous_ts_utc, reset_at_utc)
select p, o, s, f, r, t, u, null, ps, pf, pr, pt, u from unnest(
  $1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
  $8::text[], $9::bigint[], $10::text[], $11::timestamptz[]
) as x(p, o, s, f, r, t, ps, pf, pr, pt, u)
on conflict (pack_key, output_id) do update set
  last_seq = excluded.last_seq,
  last_file = excluded.last_file,
  last_row_index = excluded.last_row_index,
  last_ts_utc = excluded.last_ts_utc,
  updated_at_utc = excluded.updated_at_utc,
  receipt_owed = null,
  previous_seq = excluded.previous_seq,
  previous_file = excluded.previous_file,
  previous_row_index = excluded.previous_row_index,
  previous_ts_utc = excluded.previous_ts_utc,
  reset_at_utc = excluded.reset_at_utc

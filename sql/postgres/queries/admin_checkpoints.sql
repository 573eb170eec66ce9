-- Checkpoints as the admin API lists them (`GET /v1/checkpoints`): the last event each output
-- delivered in order, per run scope (pack_key), most recently advanced first, with the cursor the
-- last reset replaced (previous_*, NULL when never reset; 0005_checkpoint_reset.sql).
-- $1 run scope (null: all), $2 output id (null: all), $3 at most this many
select pack_key, output_id, last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc,
  previous_seq, previous_file, previous_row_index, previous_ts_utc, reset_at_utc
from ws_checkpoints
where ($1::text is null or pack_key = $1::text) and ($2::text is null or output_id = $2::text)
order by updated_at_utc desc, pack_key, output_id
limit $3

-- The checkpoint of one output in one run scope (pack_key): the last event delivered in order,
-- and the delivery receipt it is still owed, if any (see 0003_checkpoint_receipt_owed.sql), and
-- the cursor its last reset replaced (previous_*, NULL when never reset; 0005).
select last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc, receipt_owed,
  previous_seq, previous_file, previous_row_index, previous_ts_utc
from ws_checkpoints
where pack_key = $1 and output_id = $2

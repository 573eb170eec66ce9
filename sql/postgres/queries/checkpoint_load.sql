-- The checkpoint of one output in one run scope (pack_key): the last event delivered in order,
-- and the delivery receipt it is still owed, if any (see 0003_checkpoint_receipt_owed.sql).
select last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc, receipt_owed
from ws_checkpoints
where pack_key = $1 and output_id = $2

-- The checkpoint of one output in one run scope (pack_key): the last event delivered in order.
select last_seq, last_file, last_row_index, last_ts_utc, updated_at_utc
from ws_checkpoints
where pack_key = $1 and output_id = $2

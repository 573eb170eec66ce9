-- The settled position of every shard of one control bus stream (see
-- 0004_control_bus_positions.sql): the last sequence number handled, as text, and whether the
-- shard was read to its end.
select shard_id, sequence_number::text as sequence_number, finished
from ws_control_bus_positions
where stream = $1

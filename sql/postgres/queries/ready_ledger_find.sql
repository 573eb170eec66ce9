-- The row already written for this decision (same message, status and instant), if any: a
-- repeated record of one decision returns it instead of counting another attempt.
-- $1 message_id, $2 status, $3 recorded_at
select record_id, attempt
from ws_ready_ledger
where message_id = $1 and status = $2 and recorded_at = $3
order by attempt
limit 1

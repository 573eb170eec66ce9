-- The attempt number of the next decision on a message: every row counts (1 for the first).
-- $1 message_id
select coalesce(max(attempt), 0) + 1 as attempt from ws_ready_ledger where message_id = $1

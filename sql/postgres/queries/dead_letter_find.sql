-- One dead letter by its id (the record_id of the WAL record that stored it).
-- $1 id
select record_id as id, seq, run_key, output_id, event_id,
  envelope->>'platform_run_id' as platform_run_id, envelope, attempts, retries, last_status,
  reason, status, at, last_retry_at, closed_at, closed_receipt_id
from ws_dead_letters
where record_id = $1

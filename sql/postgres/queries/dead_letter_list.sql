-- Dead letters in arrival order, one page at a time (keyset paging on `seq`), each filter left out
-- when its parameter is null. The platform run comes from the stored envelope itself.
-- $1 status ('OPEN', 'CLOSED', or null for any), $2 run_key, $3 platform_run_id, $4 output_id,
-- $5 after seq (0 for the start), $6 page size
select record_id as id, seq, run_key, output_id, event_id,
  envelope->>'platform_run_id' as platform_run_id, envelope, attempts, retries, last_status,
  reason, status, at, last_retry_at, closed_at, closed_receipt_id
from ws_dead_letters
where ($1::text is null or status = $1::text)
  and ($2::text is null or run_key = $2::text)
  and ($3::text is null or envelope->>'platform_run_id' = $3::text)
  and ($4::text is null or output_id = $4::text)
  and seq > $5::bigint
order by seq
limit $6::int

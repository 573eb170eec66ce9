-- Copies WAL READY-ledger records into ws_ready_ledger, many per statement. The writer chose
-- each attempt number and record_id (readyRecordId), so a replayed record inserts nothing.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_ready_ledger
  (record_id, message_id, status, reason, platform_run_id, scenario_run_id, attempt, recorded_at, detail)
select
  r->>'record_id', r->>'message_id', r->>'status', r->>'reason', r->>'platform_run_id',
  r->>'scenario_run_id', (r->>'attempt')::int, (r->>'at')::timestamptz,
  coalesce(r->'detail', '{}'::jsonb)
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (record_id) do nothing

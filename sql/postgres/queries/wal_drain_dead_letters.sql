-- Copies WAL dead-letter records into ws_dead_letters, many per statement. A dead letter already
-- there (a replayed record) is left as it is, so an operator's retry or purge is never undone.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_dead_letters
  (record_id, run_key, output_id, event_id, envelope, attempts, last_status, reason, status, at)
select
  r->>'record_id', r->>'run_key', r->>'output_id', r->>'event_id', r->'envelope',
  (r->>'attempts')::int, (r->>'last_status')::int, r->>'reason',
  coalesce(r->>'status', 'OPEN'), (r->>'at')::timestamptz
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (record_id) do nothing

-- Copies WAL audit records into ws_audit_events, many per statement; a replayed record (same
-- record_id) inserts nothing.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_audit_events (record_id, kind, run_key, output_id, at, detail)
select
  r->>'record_id', r->>'kind', r->>'run_key', r->>'output_id', (r->>'at')::timestamptz,
  coalesce(r->'detail', '{}'::jsonb)
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (record_id) do nothing

-- Copies WAL budget records into ws_budget_ledger, many per statement; a replayed record (same
-- record_id) inserts nothing.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_budget_ledger
  (record_id, principal, run_key, output_id, metric, amount, total, cap, exceeded, at, detail)
select
  r->>'record_id', r->>'principal', r->>'run_key', r->>'output_id', r->>'metric',
  (r->>'amount')::bigint, (r->>'total')::bigint, (r->>'cap')::bigint,
  coalesce((r->>'exceeded')::boolean, false), (r->>'at')::timestamptz,
  coalesce(r->'detail', '{}'::jsonb)
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (record_id) do nothing

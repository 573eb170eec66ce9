-- Copies WAL policy-snapshot records into ws_policy_snapshots, many per statement; a replayed
-- record (same record_id) inserts nothing.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_policy_snapshots
  (record_id, run_key, principal, capability, decision, reason, policy_digest, snapshot, at)
select
  r->>'record_id', r->>'run_key', r->>'principal', r->>'capability', r->>'decision',
  r->>'reason', r->>'policy_digest', r->'snapshot', (r->>'at')::timestamptz
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (record_id) do nothing

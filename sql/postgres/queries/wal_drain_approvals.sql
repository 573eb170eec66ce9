-- Copies WAL approval records into ws_approvals: a PENDING record inserts the approval, a decided
-- one (APPROVED, DENIED, EXPIRED; it carries the whole row) inserts it or moves a PENDING row on.
-- A row already decided is never decided again (an APPROVED one only gets the outcome of the action
-- it ran, once), so a replayed record changes nothing. The drain
-- keeps one record per approval_id per batch (the last), as one upsert touches a row once.
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
insert into ws_approvals
  (approval_id, capability, principal, status, request, reason, expires_at, decided_by,
   decided_at, note, outcome, created_at, explanation)
select
  r->>'approval_id', r->>'capability', r->>'principal', r->>'status', r->'request',
  r->>'reason', (r->>'expires_at')::timestamptz, r->>'decided_by',
  case when r->>'status' = 'PENDING' then null else (r->>'at')::timestamptz end,
  r->>'note', r->'outcome', (r->>'created_at')::timestamptz, r->'explanation'
from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
order by n
on conflict (approval_id) do update set
  status = excluded.status,
  decided_by = excluded.decided_by,
  decided_at = excluded.decided_at,
  note = excluded.note,
  outcome = excluded.outcome
where (ws_approvals.status = 'PENDING' and excluded.status <> 'PENDING')
  or (ws_approvals.status = 'APPROVED' and excluded.status = 'APPROVED'
    and ws_approvals.outcome is null and excluded.outcome is not null)

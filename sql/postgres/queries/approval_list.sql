-- Approvals, oldest first, optionally of one status.
-- $1 status (null: all), $2 limit
select approval_id, capability, principal, status, request, reason, expires_at, decided_by,
  decided_at, note, outcome, created_at, explanation
from ws_approvals
where $1::text is null or status = $1::text
order by created_at, approval_id
limit $2

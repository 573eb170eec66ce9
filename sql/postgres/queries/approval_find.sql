-- One approval by id.
-- $1 approval_id
select approval_id, capability, principal, status, request, reason, expires_at, decided_by,
  decided_at, note, outcome, created_at, explanation
from ws_approvals
where approval_id = $1

-- 0006_approvals: actions parked until an operator decides them.
--
-- Model. When the capability policy answers REQUIRE_APPROVAL, the action is not done but parked:
-- an `approval` WAL record (status PENDING) carries who asked (principal), what (capability and
-- the action's request, enough to run it later), why (the decision's explanation, `reason`) and
-- until when it may be decided (`expires_at`). Deciding it appends another `approval` record with
-- the whole row and its new status (APPROVED, DENIED or EXPIRED); the drain
-- (queries/wal_drain_approvals.sql) upserts by approval_id and only ever moves a PENDING row on,
-- so a replayed record changes nothing and a decided approval is never decided again.
--
-- DDL is idempotent, like 0001, so a half-applied manual run can be finished by the runner.

alter table ws_approvals add column if not exists reason text;
alter table ws_approvals add column if not exists expires_at timestamptz;
alter table ws_approvals add column if not exists note text;
alter table ws_approvals add column if not exists outcome jsonb;
alter table ws_approvals drop constraint if exists ws_approvals_status_check;
alter table ws_approvals add constraint ws_approvals_status_check
  check (status in ('PENDING', 'APPROVED', 'DENIED', 'EXPIRED'));

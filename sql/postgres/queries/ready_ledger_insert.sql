-- Appends one decision on a READY message. record_id is chosen by the writer, so replaying the
-- same record (a WAL drain after a crash) inserts nothing the second time.
-- $1 record_id, $2 message_id, $3 status, $4 reason, $5 platform_run_id, $6 scenario_run_id,
-- $7 attempt, $8 recorded_at, $9 detail
insert into ws_ready_ledger
  (record_id, message_id, status, reason, platform_run_id, scenario_run_id, attempt, recorded_at, detail)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
on conflict (record_id) do nothing
returning record_id

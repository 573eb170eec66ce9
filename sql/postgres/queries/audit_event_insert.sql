-- Appends one audit event. record_id is a digest of the event chosen by the writer, so replaying
-- the same event inserts nothing the second time.
-- $1 record_id, $2 kind, $3 run_key, $4 output_id, $5 at, $6 detail
insert into ws_audit_events (record_id, kind, run_key, output_id, at, detail)
values ($1, $2, $3, $4, $5, $6::jsonb)
on conflict (record_id) do nothing
returning record_id

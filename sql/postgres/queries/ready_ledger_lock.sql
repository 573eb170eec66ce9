-- Serialises decisions on one READY message (transaction-scoped): the attempt number is read and
-- the next row written under this lock, so two instances never number the same attempt twice.
-- $1 message_id
select 1 as locked from (select pg_advisory_xact_lock(hashtextextended('ws_ready_ledger|' || $1, 0))) as l

-- Serialises writers of the receipt chain (transaction-scoped): the head is read and the next
-- receipt inserted under this lock, so two writers never seal onto the same head and fork it.
select 1 as locked from (select pg_advisory_xact_lock(hashtextextended('ws_receipts|chain', 0))) as l

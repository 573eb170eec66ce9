-- The stored side of keys an insert skipped: a new statement, so under READ COMMITTED it sees
-- the row of a concurrent transaction that the insert waited for.
select dedupe_key, payload_hash, admitted_seq, admitted_at_utc
from ig_admissions
where dedupe_key = any($1::text[])

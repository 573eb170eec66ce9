-- Stored receipts among the given ids: an append with a writer-chosen id, or a WAL drain, finds
-- what is already there instead of sealing it twice.
-- $1 record_ids (text[])
select record_id, body
from ws_receipts
where record_id = any($1::text[])

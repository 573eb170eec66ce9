-- The chain's head: the chain position and hash of the receipt stored last. Rows arrive in chain
-- order (one writer at a time, under receipt_lock), so the highest `seq` column is the head; the
-- chain's own position is the receipt's `seq` inside the body.
select (body->>'seq')::bigint as chain_seq, body->>'hash' as hash
from ws_receipts
order by seq desc
limit 1

-- One page of receipts in stored order (keyset paging on the `seq` column, which Postgres
-- assigns on arrival; gaps are normal after rolled-back inserts). Readers walk the chain in this
-- order, so a row moved, removed or edited shows up as a break.
-- $1 after seq (0 for the start), $2 page size
select seq as row_seq, record_id, kind, run_key, output_id, prev_hash, hash, signature, body
from ws_receipts
where seq > $1
order by seq
limit $2

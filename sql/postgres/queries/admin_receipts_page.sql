-- One page of receipts for the admin API (`GET /v1/receipts`), in stored order after a cursor
-- (the `seq` of the last receipt of the previous page), optionally of one kind and one run.
-- $1 after seq (0 for the start), $2 kind (null: any), $3 run key (null: any), $4 page size
select seq, body
from ws_receipts
where seq > $1 and ($2::text is null or kind = $2::text)
  and ($3::text is null or run_key = $3::text)
order by seq
limit $4

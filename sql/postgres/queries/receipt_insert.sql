-- Appends sealed receipts, in the order given, as one statement. The columns are copies of body
-- fields for lookups; the body is the receipt that was hashed and signed, and it alone is
-- verified. `at` is the receipt's own created_at_utc (chosen by the writer's Clock).
-- `on conflict do nothing` makes a replayed WAL record harmless.
-- $1 {"receipts": [receipt, ...]} (jsonb)
insert into ws_receipts (record_id, kind, run_key, output_id, body, prev_hash, hash, signature, at)
select r->>'receipt_id', r->>'kind', r->>'run_key', r->>'output_id', r,
  r->>'prev_hash', r->>'hash', r->>'signature', (r->>'created_at_utc')::timestamptz
from jsonb_array_elements($1::jsonb->'receipts') with ordinality as t(r, n)
order by n
on conflict (record_id) do nothing
returning record_id

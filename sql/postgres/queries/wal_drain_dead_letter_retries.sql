-- Copies WAL dead-letter retry records into ws_dead_letter_retries and folds the new ones into
-- their dead letters, in one statement. Only rows this statement inserted are folded, so a
-- replayed record (a crash between the Postgres commit and the WAL's drained marker) changes
-- nothing: `attempts` grows by each retry's requests and `retries` by one, once. The latest retry
-- gives the last status and, while the dead letter stays open, the reason. A retry the gate
-- accepted closes the dead letter; a CLOSED dead letter is never touched again, with one exception:
-- a purge (closed without sending, the envelope kept) that a failed multi-step purge compensates
-- is reopened by its RESTORED record (actions/dead_letter_purge.ts). The latest record decides the
-- status. Runs after the batch's dead-letter inserts (actors/wal/drain.ts).
-- $1 rows (text holding a JSON array of record_id, at and the body's keys)
with incoming as (
  select r, n from jsonb_array_elements($1::text::jsonb) with ordinality as rows(r, n)
),
inserted as (
  insert into ws_dead_letter_retries
    (record_id, dead_letter_id, run_key, output_id, event_id, retry, outcome, decision, requests,
     last_status, reason, message, receipt_id, actor, at)
  select r->>'record_id', r->>'dead_letter_id', r->>'run_key', r->>'output_id', r->>'event_id',
    (r->>'retry')::int, r->>'outcome', r->>'decision', (r->>'requests')::int,
    (r->>'last_status')::int, r->>'reason', r->>'message', r->>'receipt_id', r->>'actor',
    (r->>'at')::timestamptz
  from incoming
  order by n
  on conflict (record_id) do nothing
  returning dead_letter_id, retry, outcome, decision, requests, last_status, reason, receipt_id, at
),
folded as (
  select dead_letter_id,
    count(*)::int as retries,
    sum(requests)::int as requests,
    (array_agg(last_status order by retry desc, at desc))[1] as last_status,
    (array_agg(reason order by retry desc, at desc))[1] as reason,
    max(at) as last_retry_at,
    (array_agg(receipt_id order by retry desc, at desc) filter (where outcome = 'CLOSED'))[1]
      as closed_receipt_id,
    (array_agg(at order by retry desc, at desc) filter (where outcome = 'CLOSED'))[1] as closed_at,
    (array_agg(outcome order by retry desc, at desc))[1] as final_outcome,
    (array_agg(decision order by retry desc, at desc))[1] as final_decision
  from inserted
  group by dead_letter_id
)
update ws_dead_letters d set
  attempts = d.attempts + f.requests,
  retries = d.retries + f.retries,
  last_status = coalesce(f.last_status, d.last_status),
  reason = case when f.final_outcome = 'CLOSED' then d.reason else coalesce(f.reason, d.reason) end,
  last_retry_at = greatest(d.last_retry_at, f.last_retry_at),
  status = case
    when f.final_outcome = 'CLOSED' then 'CLOSED'
    when f.final_decision = 'RESTORED' then 'OPEN'
    else d.status end,
  closed_at = case when f.final_outcome = 'CLOSED' then f.closed_at else null end,
  closed_receipt_id = case when f.final_outcome = 'CLOSED' then f.closed_receipt_id else null end
from folded f
where d.record_id = f.dead_letter_id
  and (d.status <> 'CLOSED' or f.final_decision = 'RESTORED')

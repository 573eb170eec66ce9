-- The rest of a batch in one statement: its quarantine records (input order) and its counter
-- deltas per platform run, added to one shard ($8). Counter rows are touched in key order so
-- concurrent batches lock them in the same order.
-- $1: received time; $2..$7: parallel arrays, one element per quarantined attempt;
-- $9..$12: parallel arrays, one element per platform run.
with quarantined as (
  insert into ig_quarantine
    (received_at_utc, platform_run_id, event_id, event_type, reason_code, detail, record)
  select $1::text, q.platform_run_id, q.event_id, q.event_type, q.reason_code, q.detail, q.record
  from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
    with ordinality as q(platform_run_id, event_id, event_type, reason_code, detail, record, ord)
  order by q.ord
  returning 1
)
insert into ig_counters (platform_run_id, shard, admitted, duplicate, quarantined)
select c.platform_run_id, $8::int, c.admitted, c.duplicate, c.quarantined
from unnest($9::text[], $10::int8[], $11::int8[], $12::int8[])
  as c(platform_run_id, admitted, duplicate, quarantined)
order by c.platform_run_id
on conflict (platform_run_id, shard) do update set
  admitted = ig_counters.admitted + excluded.admitted,
  duplicate = ig_counters.duplicate + excluded.duplicate,
  quarantined = ig_counters.quarantined + excluded.quarantined

-- The last decision on a message and how many decisions it has had. Attempts are numbered in
-- order, so the highest attempt is the latest even when a test clock gives every row one instant.
-- $1 message_id
select status, reason, attempt, recorded_at, platform_run_id, scenario_run_id,
  count(*) over () as attempts
from ws_ready_ledger
where message_id = $1
order by attempt desc, recorded_at desc, record_id desc
limit 1

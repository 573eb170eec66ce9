-- Every message's latest decision, its highest attempt number and whether it was ever STREAMED
-- (with or without dead letters):
-- what the runtime's local READY ledger summary is seeded with the first time Postgres answers.
-- Attempts are numbered in order, so the highest attempt is the latest even when a test clock
-- gives every row one instant.
select distinct on (message_id)
  message_id, record_id, status, reason, platform_run_id, scenario_run_id, attempt, recorded_at,
  max(attempt) over w as attempts,
  bool_or(status in ('STREAMED', 'STREAMED_WITH_DEAD_LETTERS')) over w as streamed
from ws_ready_ledger
window w as (partition by message_id)
order by message_id, attempt desc, recorded_at desc, record_id desc

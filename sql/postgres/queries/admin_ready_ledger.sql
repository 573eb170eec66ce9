-- The READY ledger as the admin API shows it: each message's latest decision and how many it has
-- had (`GET /v1/runs`), or every decision on one message, oldest first (`GET /v1/runs/{run}`).
-- $1 message id (null: the latest decision of every message, newest first), $2 at most this many
select message_id, status, reason, platform_run_id, scenario_run_id, attempt, recorded_at,
  detail, attempts
from (
  select l.*, max(attempt) over (partition by message_id) as attempts,
    row_number() over (
      partition by message_id order by attempt desc, recorded_at desc, record_id desc
    ) as nth
  from ws_ready_ledger l
  where $1::text is null or message_id = $1::text
) ranked
where $1::text is not null or nth = 1
order by case when $1::text is null then recorded_at end desc, attempt, recorded_at
limit $2

-- Runs as their run receipts tell them (admin API `GET /v1/runs`, `GET /v1/runs/{run}`): one row
-- per run key with how often it started, when it first started and last ended, and the detail of
-- its latest run_start and run_end receipts. A run whose latest start is after its latest end
-- (start_seq > end_seq) has not ended: in flight, or cut off by a crash. Newest first.
-- $1 run key (null: every run), $2 READY message id (null: any), $3 at most this many runs
with runs as (
  select run_key,
    count(*) filter (where kind = 'run_start')::int as attempts,
    min(at) filter (where kind = 'run_start') as started_at,
    max(at) filter (where kind = 'run_end') as ended_at,
    max(seq) filter (where kind = 'run_start') as start_seq,
    max(seq) filter (where kind = 'run_end') as end_seq,
    (array_agg(body->'detail' order by seq desc) filter (where kind = 'run_start'))[1]
      as start_detail,
    (array_agg(body->'detail' order by seq desc) filter (where kind = 'run_end'))[1]
      as end_detail
  from ws_receipts
  where kind in ('run_start', 'run_end') and run_key is not null
    and ($1::text is null or run_key = $1::text)
  group by run_key
)
select * from runs
where $2::text is null or start_detail->>'message_id' = $2::text
order by greatest(start_seq, coalesce(end_seq, 0)) desc
limit $3

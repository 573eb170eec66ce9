-- Decisions per platform run: the counter shards summed.
select platform_run_id, sum(admitted)::int8 as admitted, sum(duplicate)::int8 as duplicate,
  sum(quarantined)::int8 as quarantined
from ig_counters
group by platform_run_id
order by platform_run_id

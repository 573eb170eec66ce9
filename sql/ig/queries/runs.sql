-- Every platform run the gate has decided events for.
select distinct platform_run_id from ig_counters order by platform_run_id

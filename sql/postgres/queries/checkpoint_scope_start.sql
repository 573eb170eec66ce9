-- The newest run_start receipt of a run scope (pack_key): what a checkpoint reset reads to find
-- the world (engine_run_root, scenario_id) whose stream view the scope's checkpoints index.
-- $1 run scope
select body
from ws_receipts
where kind = 'run_start' and run_key = $1
order by seq desc
limit 1

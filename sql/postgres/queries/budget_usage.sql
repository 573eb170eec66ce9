-- What the budget ledger says a run and its principal consumed, summed per (principal, run,
-- output, metric), with the last view sequence charged (re-sends up to it cost nothing). Rows
-- still in the WAL are passed in $3 and left out here: the caller adds them from the WAL, so a
-- row the drain copies meanwhile is counted once.
-- $1 principal, $2 run_key, $3 text holding a JSON array of record ids to leave out
select principal, run_key, output_id, metric,
  sum(amount)::text as amount,
  max((detail->>'seq_to')::bigint)::text as seq_to
from ws_budget_ledger
where (principal = $1 or run_key = $2)
  and record_id not in (select jsonb_array_elements_text($3::text::jsonb))
group by principal, run_key, output_id, metric

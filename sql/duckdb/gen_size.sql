-- Size of a generated world (see gen_macros.sql): how many arrivals make exactly $events rows of
-- the with-fraud event stream. Flow a has gw_flow_events(a) events (2–4 baseline, +1 if fraud),
-- so at most $events // 2 + 1 flows are needed. Totals per chunk of 65536 flows find the chunk
-- where the running count reaches $events (a streaming aggregate, no big window); a running sum
-- inside that chunk finds the last flow, which keeps only the events that fit (last_events).
WITH chunks AS (
  SELECT a // 65536 AS c, sum(gw_flow_events($rng, a, $epoch_blocks)) AS k
  FROM range($events // 2 + 1) AS t(a)
  GROUP BY c
), target AS (
  SELECT c, upto - k AS before
  FROM (SELECT c, k, sum(k) OVER (ORDER BY c) AS upto FROM chunks)
  WHERE upto >= $events
  ORDER BY c
  LIMIT 1
), flows AS (
  SELECT a, gw_flow_events($rng, a, $epoch_blocks) AS k, before
  FROM (SELECT unnest(range(c * 65536, c * 65536 + 65536)) AS a, before FROM target)
), running AS (
  SELECT a, k, before + sum(k) OVER (ORDER BY a) AS upto FROM flows
)
SELECT (a + 1)::BIGINT AS arrivals, ($events - (upto - k))::BIGINT AS last_events
FROM running
WHERE upto >= $events
ORDER BY a
LIMIT 1;

-- The envelope fields that are the same on every event of a run, serialised once by DuckDB (it
-- does the escaping) and handed to envelope_rows.sql as two parameters, spliced into each row
-- without their braces:
--
--   before_ts  `"event_type":…,"schema_version":"v1"` (what comes before ts_utc)
--   after_ts   the pins (what comes between ts_utc and the payload)
--
-- A query of its own rather than a CTE joined to every row: DuckDB ran that one-row join as a
-- cross product that held ~90 MB more native memory while streaming (1M-event view, one thread).
-- Key order carries no meaning in JSON (the gate hashes a canonical form).
-- $span_id = '' means "no span_id" (a real one is at least one character long).
SELECT
  substr(fixed, 2, length(fixed) - 2) AS before_ts,
  substr(pins, 2, length(pins) - 2) AS after_ts
FROM (
  SELECT
    json_object('event_type', $output_id, 'schema_version', 'v1')::VARCHAR AS fixed,
    CASE WHEN $span_id = '' THEN
      json_object(
        'manifest_fingerprint', $manifest_fingerprint,
        'parameter_hash', $parameter_hash,
        'seed', $seed,
        'scenario_id', $scenario_id,
        'run_id', $run_id,
        'platform_run_id', $platform_run_id,
        'scenario_run_id', $scenario_run_id,
        'producer', $producer,
        'trace_id', $trace_id)::VARCHAR
    ELSE
      json_object(
        'manifest_fingerprint', $manifest_fingerprint,
        'parameter_hash', $parameter_hash,
        'seed', $seed,
        'scenario_id', $scenario_id,
        'run_id', $run_id,
        'platform_run_id', $platform_run_id,
        'scenario_run_id', $scenario_run_id,
        'producer', $producer,
        'trace_id', $trace_id,
        'span_id', $span_id)::VARCHAR
    END AS pins
)

-- s2_event_stream_baseline_6B, one part: the baseline (pre-overlay) events of the flows of j in
-- [$j0, $j1) (see gen_macros.sql): event_seq 0..k2-1, AUTH_REQUEST, AUTH_RESPONSE, CLEARING,
-- REFUND. A flow's events sit together; flows are in no time order.
-- Columns and order follow schemas.6B.yaml#/s2/event_stream_baseline_6B.
COPY (
  SELECT
    flow_id::BIGINT AS flow_id,
    event_seq::BIGINT AS event_seq,
    event_type::VARCHAR AS event_type,
    gw_utc(ts_us)::VARCHAR AS ts_utc,
    amount::DOUBLE AS amount,
    gw('seed')::BIGINT AS seed,
    gw('mf')::VARCHAR AS manifest_fingerprint,
    gw('ph')::VARCHAR AS parameter_hash,
    gw('scenario_id')::VARCHAR AS scenario_id
  FROM gw_events($j0, $j1)
  WHERE event_seq < k2
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

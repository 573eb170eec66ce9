-- s3_event_stream_with_fraud_6B, one part: the baseline events plus the fraud overlay (see
-- gen_macros.sql) for the flows of j in [$j0, $j1): every event of a campaign's flow is flagged
-- with the campaign id, and each such flow has one injected event after its baseline ones.
-- Columns and order follow schemas.6B.yaml#/s3/event_stream_with_fraud_6B.
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
    gw('scenario_id')::VARCHAR AS scenario_id,
    fraud::BOOLEAN AS fraud_flag,
    campaign_id::VARCHAR AS campaign_id
  FROM gw_events($j0, $j1)
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

-- s2_flow_anchor_baseline_6B, one part: one flow per arrival (see gen_macros.sql), anchored at
-- the arrival's time with the flow amount and the arrival's entities, for j in [$j0, $j1).
-- Columns and order follow schemas.6B.yaml#/s2/flow_anchor_baseline_6B.
COPY (
  SELECT
    flow_id::BIGINT AS flow_id,
    arrival_seq::BIGINT AS arrival_seq,
    merchant_id::BIGINT AS merchant_id,
    party_id::BIGINT AS party_id,
    account_id::BIGINT AS account_id,
    instrument_id::BIGINT AS instrument_id,
    device_id::BIGINT AS device_id,
    ip_id::BIGINT AS ip_id,
    gw_utc(t_us)::VARCHAR AS ts_utc,
    amount::DOUBLE AS amount,
    gw('seed')::BIGINT AS seed,
    gw('mf')::VARCHAR AS manifest_fingerprint,
    gw('ph')::VARCHAR AS parameter_hash,
    gw('scenario_id')::VARCHAR AS scenario_id
  FROM gw_arrivals($j0, $j1)
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

-- s1_arrival_entities_6B, one part: the entities attached to each arrival (see gen_macros.sql)
-- before any fraud overlay, one row per arrival of j in [$j0, $j1). Columns and order follow
-- schemas.6B.yaml#/s1/arrival_entities_6B.
COPY (
  SELECT
    gw('scenario_id')::VARCHAR AS scenario_id,
    arrival_seq::BIGINT AS arrival_seq,
    merchant_id::BIGINT AS merchant_id,
    gw_utc(t_us)::VARCHAR AS ts_utc,
    party_id::BIGINT AS party_id,
    account_id::BIGINT AS account_id,
    instrument_id::BIGINT AS instrument_id,
    device_id::BIGINT AS device_id,
    ip_id::BIGINT AS ip_id,
    session_id::BIGINT AS session_id,
    gw('seed')::BIGINT AS seed,
    gw('mf')::VARCHAR AS manifest_fingerprint,
    gw('ph')::VARCHAR AS parameter_hash
  FROM gw_arrivals($j0, $j1)
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

-- s3_flow_anchor_with_fraud_6B, one part: the baseline flow anchor after the fraud overlay (see
-- gen_macros.sql), for j in [$j0, $j1). A campaign's flows are flagged with its id and carry the
-- fraudster's device and IP from the campaign pool; the victim's party, account and card stay.
-- Columns and order follow schemas.6B.yaml#/s3/flow_anchor_with_fraud_6B.
COPY (
  SELECT
    flow_id::BIGINT AS flow_id,
    arrival_seq::BIGINT AS arrival_seq,
    merchant_id::BIGINT AS merchant_id,
    party_id::BIGINT AS party_id,
    account_id::BIGINT AS account_id,
    instrument_id::BIGINT AS instrument_id,
    coalesce(campaign_device_id, device_id)::BIGINT AS device_id,
    coalesce(campaign_ip_id, ip_id)::BIGINT AS ip_id,
    gw_utc(t_us)::VARCHAR AS ts_utc,
    amount::DOUBLE AS amount,
    gw('seed')::BIGINT AS seed,
    gw('mf')::VARCHAR AS manifest_fingerprint,
    gw('ph')::VARCHAR AS parameter_hash,
    gw('scenario_id')::VARCHAR AS scenario_id,
    fraud::BOOLEAN AS fraud_flag,
    campaign_id::VARCHAR AS campaign_id
  FROM gw_arrivals($j0, $j1)
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

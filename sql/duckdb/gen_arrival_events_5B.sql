-- arrival_events_5B, one part: the arrival skeleton (see gen_macros.sql), one row per arrival of
-- j in [$j0, $j1). Columns and order follow schemas.5B.yaml#/egress/s4_arrival_events_5B.
-- Local wall times are the UTC instant in the merchant's zones (DST honoured, see gw_local);
-- bucket_index counts hours since the world start; lambda_realised is the merchant's arrival
-- rate per hour over the block's active span. Physical merchants have sites, virtual ones edges.
COPY (
  SELECT
    gw('mf')::VARCHAR AS manifest_fingerprint,
    gw('ph')::VARCHAR AS parameter_hash,
    gw('seed')::BIGINT AS seed,
    gw('scenario_id')::VARCHAR AS scenario_id,
    merchant_id::BIGINT AS merchant_id,
    gw_tz_names()[tz_primary + 1]::VARCHAR AS zone_representation,
    channel_group::VARCHAR AS channel_group,
    bucket_index::BIGINT AS bucket_index,
    arrival_seq::BIGINT AS arrival_seq,
    gw_utc(t_us)::VARCHAR AS ts_utc,
    gw_tz_names()[tz_primary + 1]::VARCHAR AS tzid_primary,
    gw_local(t_us, tz_primary)::VARCHAR AS ts_local_primary,
    gw_tz_names()[tz_settlement + 1]::VARCHAR AS tzid_settlement,
    gw_local(t_us, tz_settlement)::VARCHAR AS ts_local_settlement,
    gw_tz_names()[tz_operational + 1]::VARCHAR AS tzid_operational,
    gw_local(t_us, tz_operational)::VARCHAR AS ts_local_operational,
    ('tzg_' || lower(split_part(gw_tz_names()[tz_primary + 1], '/', 1)))::VARCHAR
      AS tz_group_id,
    site_id::BIGINT AS site_id,
    edge_id::BIGINT AS edge_id,
    gw('routing_hash')::VARCHAR AS routing_universe_hash,
    lambda_realised::DOUBLE AS lambda_realised,
    is_virtual::BOOLEAN AS is_virtual,
    '1.0.0'::VARCHAR AS s4_spec_version
  FROM gw_arrivals($j0, $j1)
) TO __TARGET__ (FORMAT parquet, COMPRESSION zstd);

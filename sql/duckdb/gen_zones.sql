-- Zone offsets of a generated world (see gen_macros.sql, gw_local): the UTC offset in µs of each
-- zone of gw_tz_names() at every hour from gw('tz_base_us') for gw('tz_hours') hours, asked of
-- ICU once here so rows only look it up. Ordered zone-major: index z·tz_hours + hour + 1.
SET VARIABLE gen_world_tz_offsets = (
  SELECT list(
    epoch_us(timezone(gw_tz_names()[z + 1], timezone('UTC', make_timestamp(at_us)))) - at_us
    ORDER BY z, h
  )
  FROM (
    SELECT z, h, gw('tz_base_us') + h * 3600000000 AS at_us
    FROM range(len(gw_tz_names())) AS tz(z), range(gw('tz_hours')) AS hr(h)
  )
);

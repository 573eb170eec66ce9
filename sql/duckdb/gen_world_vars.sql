-- World constants of a generated world (see gen_macros.sql), kept in the session variable
-- `gen_world` and read by the macros through gw(field); DuckDB folds them into constants.
-- Arrivals are visited in the order a = (j·mult + off) mod arrivals, a bijection because mult is
-- coprime to arrivals; mult ≈ 0.618·arrivals spreads neighbouring j across the whole timeline,
-- so a part (a range of j) holds flows from everywhere in time, in no time order.
-- The block curve's amplitude amp = 0.6·blocks_per_day/2π keeps it monotone (slope 0.4..1.6).
-- Zone offsets (gen_zones.sql) cover tz_hours hours from tz_base_us, a day before the start to a
-- day after the last arrival. Lists live in their own variables: every gw(field) copies this
-- struct into the plan, so it stays small.
SET VARIABLE gen_world = (
  WITH sized AS (
    SELECT ($arrivals + 63) // 64 AS blocks
  ), zones AS (
    SELECT $start_us - 86400000000 AS base_us, ($days + 2) * 24 AS hours
  )
  SELECT {
    'seed': $seed,
    'rng': $rng,
    'scenario_id': $scenario_id,
    'mf': $manifest_fingerprint,
    'ph': $parameter_hash,
    'routing_hash': $routing_universe_hash,
    'arrivals': $arrivals,
    'last_events': $last_events,
    'epoch_blocks': $epoch_blocks,
    'start_us': $start_us,
    'days': $days,
    'parties': greatest(20, $arrivals // 5),
    'mult': (
      SELECT min(m) FROM range(
        floor($arrivals * 0.6180339887)::BIGINT,
        floor($arrivals * 0.6180339887)::BIGINT + 10000
      ) AS t(m)
      WHERE gcd(m, $arrivals) = 1
    ),
    'off': (hash($rng, 7) % $arrivals)::BIGINT,
    'slot_us': $days * 86400e6 / blocks,
    'blocks_per_day': blocks / $days,
    'amp': 0.6 * (blocks / $days) / (2 * pi()),
    'phase': 2 * pi() * gw_u01($rng, 0, 1),
    'tz_base_us': base_us,
    'tz_hours': hours
  }
  FROM sized, zones
);

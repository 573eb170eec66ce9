-- The engine-world model of scripts/gen_world.ts, as session-local (TEMP) macros.
--
-- Every value is a pure function of (rng, row index, salt), rng being a hash of the seed and
-- scenario: `gw_u01` turns DuckDB's hash() into a uniform in [0, 1), so a row can be computed on
-- its own, in any order, in any part, and the same arguments always give the same rows. Nothing is materialised: an output part is
-- a projection over `range(j0, j1)`, streamed straight into a parquet COPY.
--
-- Arrivals. Arrival `a` (0 .. arrivals-1) is in time order. It sits in block q = a // 64 at
-- position pos = a % 64. A block is one pass over 64 lanes; each lane belongs to one of 32
-- merchants (lane l → merchant (32·l²) // 4096, so a few merchants own many lanes and most own
-- one), and lanes are shuffled once per world. A merchant's arrival_seq is therefore
-- q·(its lanes) + (rank of the lane among its lanes in block order) + 1: 1..n, in time order.
-- Block q starts at c(q) = slot·(q + amp·(sin(2πq/blocks_per_day + φ) − sin φ)), a monotone
-- curve whose rate swings 4:1 over a day; within a block the arrivals fill 3 % (a burst,
-- followed by a quiet gap), 40 % (sparse) or 95 % of the block.
--
-- Flows. One flow per arrival (flow_id = a scrambled bijection of a). Its baseline events
-- (event_seq 0..k2-1): AUTH_REQUEST at the arrival, AUTH_RESPONSE 40 ms–3 s later (5 % of flows
-- answered by stand-in in the same microsecond: duplicate ts_utc), CLEARING 2–30 h later stamped
-- to the whole second (batch files: flows share an exact ts_utc), REFUND 1–72 h after clearing.
-- 8 % of flows are declined (2 events), 6 % refunded (4), the rest cleared (3).
--
-- Fraud overlay. Blocks are grouped in campaign epochs of `epoch_blocks`; every third epoch runs
-- a campaign CAMP_<epoch> that takes 3–17 % of its flows. A fraud flow gets one injected event
-- after its baseline ones (a card-testing AUTH_REQUEST retry if declined, else a CHARGEBACK),
-- and in the with-fraud flow anchor the fraudster's device and IP from the campaign's pool.
-- The last flow is cut to `last_events` events so the with-fraud stream has exactly `events`.
--
-- Entities. Parties are drawn skewed (u^1.3) from a population of arrivals/5; accounts,
-- instruments, devices and IPs hang off the party (20 % of IPs from a shared carrier pool);
-- a session is a party's 30-minute window. Ids are tag·2³² + an odd-multiplier bijection of
-- the index (of a hash, for sessions), so they look random and two entities never share one. World constants come from the
-- `gen_world` variable (gen_world_vars.sql), read through `gw(field)`.

-- Rows reach each part in range() order, so a part's bytes are the same on every run
-- (session-scoped: other users of the database keep their own setting).
SET SESSION preserve_insertion_order = true;

CREATE OR REPLACE TEMP MACRO gw(field) AS struct_extract(getvariable('gen_world'), field);

CREATE OR REPLACE TEMP MACRO gw_u01(seed, x, salt) AS
  (hash(seed, x, salt) >> 11)::DOUBLE / 9007199254740992.0;

-- A pick in 0..n-1. (hash() is UBIGINT: mixing it with BIGINT would widen to slow HUGEINT.)
CREATE OR REPLACE TEMP MACRO gw_pick(seed, x, salt, n) AS
  (hash(seed, x, salt) % n::UBIGINT)::BIGINT;

CREATE OR REPLACE TEMP MACRO gw_id(seed, tag, x) AS
  tag * 4294967296 + (x * 1540483477 + (hash(seed, tag) % 4294967296)::BIGINT) % 4294967296;

CREATE OR REPLACE TEMP MACRO gw_utc(us) AS strftime(make_timestamp(us), '%Y-%m-%dT%H:%M:%S.%fZ');

-- Merchant time zones are indexes z into this list (12 = operational UTC).
CREATE OR REPLACE TEMP MACRO gw_tz_names() AS [
  'Europe/London', 'Europe/Berlin', 'Europe/Paris', 'America/New_York', 'America/Chicago',
  'America/Los_Angeles', 'America/Sao_Paulo', 'Africa/Lagos', 'Asia/Kolkata', 'Asia/Singapore',
  'Asia/Tokyo', 'Australia/Sydney', 'Etc/UTC'
];

-- Local wall time in zone z from the zone's UTC offset at that hour (gen_zones.sql asks ICU once
-- per zone and hour; every listed zone changes offset on a whole UTC hour), which is far cheaper
-- than an ICU conversion per row.
CREATE OR REPLACE TEMP MACRO gw_local(us, z) AS
  strftime(
    make_timestamp(us + getvariable('gen_world_tz_offsets')[
      (z * gw('tz_hours') + (us - gw('tz_base_us')) // 3600000000 + 1)::INTEGER]),
    '%Y-%m-%dT%H:%M:%S.%f'
  );

CREATE OR REPLACE TEMP MACRO gw_baseline_events(seed, a) AS
  CASE
    WHEN gw_u01(seed, a, 31) < 0.08 THEN 2
    WHEN gw_u01(seed, a, 31) >= 0.94 THEN 4
    ELSE 3
  END;

CREATE OR REPLACE TEMP MACRO gw_epoch(a, epoch_blocks) AS a // 64 // epoch_blocks;

CREATE OR REPLACE TEMP MACRO gw_is_fraud(seed, a, epoch_blocks) AS
  (gw_epoch(a, epoch_blocks) + gw_pick(seed, 0, 41, 3)) % 3 = 0
  AND gw_u01(seed, a, 43) < 0.03 + (hash(seed, gw_epoch(a, epoch_blocks), 42) % 15) / 100.0;

CREATE OR REPLACE TEMP MACRO gw_flow_events(seed, a, epoch_blocks) AS
  gw_baseline_events(seed, a) + CASE WHEN gw_is_fraud(seed, a, epoch_blocks) THEN 1 ELSE 0 END;

CREATE OR REPLACE TEMP MACRO gw_block_start(q) AS
  gw('slot_us') * (q + gw('amp') * (sin(2 * pi() * q / gw('blocks_per_day') + gw('phase'))
    - sin(gw('phase'))));

-- One row per arrival of j in [j0, j1), visited through the world's permutation of arrivals.
CREATE OR REPLACE TEMP MACRO gw_arrivals(j0, j1) AS TABLE
WITH picked AS (
  SELECT (r.j * gw('mult') + gw('off')) % gw('arrivals') AS a
  FROM range(j0, j1) AS r(j)
), placed AS (
  SELECT
    a,
    a // 64 AS q,
    getvariable('gen_world_lanes')[(a % 64 + 1)::INTEGER] AS lane,
    hash(gw('rng'), a // 64, 2) % 100 AS block_mode,
    gw_u01(gw('rng'), a, 3) AS jitter
  FROM picked
), timed AS (
  SELECT
    *,
    lane // 16384 AS k,
    lane % 128 AS lanes_of_merchant,
    q * (lane % 128) + (lane // 128) % 128 + 1 AS arrival_seq,
    CASE WHEN block_mode < 12 THEN 0.03 WHEN block_mode < 30 THEN 0.40 ELSE 0.95 END
      * (gw_block_start(q + 1) - gw_block_start(q)) AS active_us,
    gw_block_start(q) AS block_us
  FROM placed
), flows AS (
  SELECT
    *,
    gw('start_us') + floor(block_us + active_us * ((a % 64) + jitter) / 64)::BIGINT AS t_us,
    hash(gw('rng'), k, 21) AS mh,
    gw_baseline_events(gw('rng'), a) AS k2_full,
    gw_is_fraud(gw('rng'), a, gw('epoch_blocks')) AS fraud,
    floor(gw('parties') * pow(gw_u01(gw('rng'), a, 60), 1.3))::BIGINT AS party_idx
  FROM timed
), owned AS (
  SELECT
    *,
    party_idx * 2 + CASE WHEN gw_pick(gw('rng'), party_idx, 61, 100) < 30
      THEN gw_pick(gw('rng'), a, 62, 2) ELSE 0 END AS account_idx
  FROM flows
)
SELECT
  a,
  k,
  arrival_seq,
  t_us,
  round(lanes_of_merchant * 3600e6 / active_us, 6) AS lambda_realised,
  (t_us - gw('start_us')) // 3600000000 AS bucket_index,
  gw_id(gw('rng'), 1, k) AS merchant_id,
  gw_id(gw('rng'), 2, a) AS flow_id,
  mh % 100 < 30 AS is_virtual,
  ((mh // 100) % 12)::BIGINT AS tz_primary,
  CASE WHEN (mh // 1200) % 10 < 4 THEN CASE WHEN (mh // 12000) % 2 = 0 THEN 0 ELSE 3 END END
    AS tz_settlement,
  CASE WHEN mh % 100 < 30 THEN 12 END AS tz_operational,
  CASE
    WHEN mh % 100 < 30 THEN 'card_not_present'
    WHEN (mh // 120000) % 5 = 0 THEN 'mixed'
    ELSE 'card_present'
  END AS channel_group,
  CASE WHEN mh % 100 >= 30
    THEN gw_id(gw('rng'), 8, k * 8 + gw_pick(gw('rng'), a, 81, 1 + (mh // 600000) % 8))
  END AS site_id,
  CASE WHEN mh % 100 < 30 THEN gw_id(gw('rng'), 9, k * 4 + gw_pick(gw('rng'), a, 82, 4)) END
    AS edge_id,
  greatest(0.01, round(exp(2.3 + 2.2 * gw_u01(gw('rng'), k, 22)
    + 0.9 * sqrt(-2 * ln(1 - gw_u01(gw('rng'), a, 23)))
    * cos(2 * pi() * gw_u01(gw('rng'), a, 24))), 2)) AS amount,
  party_idx,
  gw_id(gw('rng'), 3, party_idx) AS party_id,
  gw_id(gw('rng'), 4, account_idx) AS account_id,
  gw_id(gw('rng'), 5, account_idx * 2
    + CASE WHEN gw_u01(gw('rng'), a, 63) < 0.2 THEN 1 ELSE 0 END) AS instrument_id,
  gw_id(gw('rng'), 6, party_idx * 3
    + gw_pick(gw('rng'), a, 64, 1 + gw_pick(gw('rng'), party_idx, 65, 3))) AS device_id,
  CASE WHEN gw_u01(gw('rng'), a, 66) < 0.2
    THEN gw_id(gw('rng'), 7, gw('parties') * 2
      + gw_pick(gw('rng'), a, 67, greatest(1, gw('parties') // 20)))
    ELSE gw_id(gw('rng'), 7, party_idx * 2 + gw_pick(gw('rng'), a, 68, 2))
  END AS ip_id,
  gw_id(gw('rng'), 12, (hash(gw('rng'), party_idx, t_us // 1800000000, 69) % 4294967296)::BIGINT)
    AS session_id,
  fraud,
  CASE WHEN fraud THEN printf('CAMP_%04d', gw_epoch(a, gw('epoch_blocks'))) END AS campaign_id,
  CASE WHEN fraud
    THEN gw_id(gw('rng'), 10, gw_epoch(a, gw('epoch_blocks')) * 16 + gw_pick(gw('rng'), a, 71, 16))
  END AS campaign_device_id,
  CASE WHEN fraud
    THEN gw_id(gw('rng'), 11, gw_epoch(a, gw('epoch_blocks')) * 8 + gw_pick(gw('rng'), a, 72, 8))
  END AS campaign_ip_id,
  k2_full,
  CASE WHEN a = gw('arrivals') - 1 THEN least(gw('last_events'), k2_full) ELSE k2_full END
    AS k2,
  CASE WHEN a = gw('arrivals') - 1 THEN gw('last_events')
    ELSE k2_full + CASE WHEN fraud THEN 1 ELSE 0 END END AS k3
FROM owned;

-- One row per event of the flows of j in [j0, j1): event_seq < k2 are baseline events, the one
-- at k2_full (fraud flows only) is the overlay's injected event.
CREATE OR REPLACE TEMP MACRO gw_events(j0, j1) AS TABLE
WITH flows AS (
  SELECT
    *,
    t_us + CASE WHEN gw_u01(gw('rng'), a, 51) < 0.05 THEN 0
      ELSE 40000 + floor(pow(gw_u01(gw('rng'), a, 52), 2) * 2960000)::BIGINT END AS t1_us,
    (t_us + 7200000000 + floor(gw_u01(gw('rng'), a, 53) * 28 * 3600e6)::BIGINT)
      // 1000000 * 1000000 AS t2_us
  FROM gw_arrivals(j0, j1)
), timed AS (
  SELECT
    *,
    t2_us + 3600000000 + floor(gw_u01(gw('rng'), a, 54) * 71 * 3600e6)::BIGINT AS t3_us
  FROM flows
), expanded AS (
  SELECT *, unnest(range(k3)) AS event_seq FROM timed
)
SELECT
  flow_id,
  event_seq,
  CASE
    WHEN event_seq = 0 THEN 'AUTH_REQUEST'
    WHEN event_seq = 1 THEN 'AUTH_RESPONSE'
    WHEN event_seq < k2_full THEN CASE WHEN event_seq = 2 THEN 'CLEARING' ELSE 'REFUND' END
    WHEN k2_full = 2 THEN 'AUTH_REQUEST'
    ELSE 'CHARGEBACK'
  END AS event_type,
  CASE
    WHEN event_seq = 0 THEN t_us
    WHEN event_seq = 1 THEN t1_us
    WHEN event_seq < k2_full THEN CASE WHEN event_seq = 2 THEN t2_us ELSE t3_us END
    WHEN k2_full = 2 THEN t1_us + 1000000 + floor(gw_u01(gw('rng'), a, 55) * 29e6)::BIGINT
    ELSE CASE WHEN k2_full = 4 THEN t3_us ELSE t2_us END + 21600000000
      + floor(gw_u01(gw('rng'), a, 56) * 66 * 3600e6)::BIGINT
  END AS ts_us,
  CASE WHEN event_seq = 3 AND k2_full = 4
    THEN round(amount * (0.25 + 0.75 * gw_u01(gw('rng'), a, 57)), 2)
    ELSE amount
  END AS amount,
  k2,
  fraud,
  campaign_id
FROM expanded;

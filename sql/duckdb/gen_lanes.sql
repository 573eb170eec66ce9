-- Lane plan of a generated world (see gen_macros.sql): a block of 64 arrivals visits 64 lanes;
-- lane l belongs to merchant (32·l²) // 4096, so merchant sizes fall off like a power law
-- (12, 4, 4, 3, … lanes, most merchants one). The lanes are shuffled once per seed so merchants
-- interleave in time. Each block position stores merchant·16384 + rank·128 + lanes-of-merchant,
-- where rank counts the merchant's earlier positions in the block: that keeps arrival_seq in
-- time order per merchant without any join.
SET VARIABLE gen_world_lanes = (
  WITH lanes AS (
    SELECT l, (32 * l * l) // 4096 AS k FROM range(64) AS t(l)
  ), placed AS (
    SELECT k, row_number() OVER (ORDER BY hash($rng, l, 5), l) - 1 AS pos FROM lanes
  ), ranked AS (
    SELECT
      pos,
      k,
      row_number() OVER (PARTITION BY k ORDER BY pos) - 1 AS rnk,
      count(*) OVER (PARTITION BY k) AS cnt
    FROM placed
  )
  SELECT list(k * 16384 + rnk * 128 + cnt ORDER BY pos) FROM ranked
);

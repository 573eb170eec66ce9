import assert from "node:assert/strict";
import { LatenessStats } from "./lateness.ts";

Deno.test("lateness quantiles stay within 1.6% of the exact ones over a wide range", () => {
  const stats = new LatenessStats();
  const values: number[] = [];
  // A deterministic spread from 0.001 ms to ~30 s, skewed towards small values like real lateness.
  let x = 12345;
  for (let i = 0; i < 50_000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const v = Math.exp((x / 2 ** 32) * 17) / 1000;
    values.push(v);
    stats.add(v);
  }
  values.sort((a, b) => a - b);
  for (const q of [0.5, 0.9, 0.99, 0.999]) {
    const exact = values[Math.floor(q * values.length)];
    const got = stats.quantile(q);
    assert.ok(
      Math.abs(got - exact) <= exact * 0.016 + 0.001,
      `q=${q}: ${got} vs exact ${exact}`,
    );
  }
  assert.equal(stats.count, 50_000);
  assert.equal(stats.max, values[values.length - 1]);
});

Deno.test("early events count as zero lateness and an empty histogram reports zeros", () => {
  const stats = new LatenessStats();
  assert.deepEqual(stats.summary(), { count: 0, p50_ms: 0, p99_ms: 0, max_ms: 0 });
  stats.add(-3);
  stats.add(-0.5);
  stats.add(2);
  assert.equal(stats.quantile(0.5), 0);
  assert.equal(stats.quantile(0.99), 2);
  assert.equal(stats.max, 2);
  assert.equal(stats.sum, 2);
});

Deno.test("a quantile never exceeds the largest value seen, even for huge values", () => {
  const stats = new LatenessStats();
  stats.add(5e12);
  stats.add(7.25);
  assert.equal(stats.quantile(0.99), 5e12);
  assert.ok(Math.abs(stats.quantile(0) - 7.25) <= 7.25 * 0.016);
});

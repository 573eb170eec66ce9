/**
 * Pacing lateness (actual send time minus due time): count, max, and a bounded uniform sample
 * for percentiles, so a long run keeps constant memory.
 */

const SAMPLE = 20_000;

/** Streaming lateness statistics in milliseconds. */
export class LatenessStats {
  count = 0;
  max = 0;
  sum = 0;
  private readonly sample: number[] = [];
  // A deterministic LCG for reservoir replacement: no global randomness in a hot loop.
  private seed = 0x2545f491;

  /** Records one event's lateness (negative = early, counted as 0). */
  add(ms: number): void {
    const v = Math.max(0, ms);
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (this.sample.length < SAMPLE) this.sample.push(v);
    else {
      this.seed = (Math.imul(this.seed, 1664525) + 1013904223) >>> 0;
      const j = this.seed % this.count;
      if (j < SAMPLE) this.sample[j] = v;
    }
  }

  /** The q-quantile (0..1) of the sample, or 0 when empty. */
  quantile(q: number): number {
    if (this.sample.length === 0) return 0;
    const sorted = [...this.sample].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  /** Summary for status and bench output. */
  summary(): { count: number; p50_ms: number; p99_ms: number; max_ms: number } {
    return {
      count: this.count,
      p50_ms: this.quantile(0.5),
      p99_ms: this.quantile(0.99),
      max_ms: this.max,
    };
  }
}

// A fixed-bucket histogram of durations in milliseconds: recording is a short bucket scan and three increments (no
// allocation, no samples kept); averages are exact, percentiles are estimated from the buckets (linear inside the
// bucket, as Prometheus' histogram_quantile does). The same buckets are exported as OpenMetrics histograms.

/** Upper bounds (inclusive) of the buckets, in milliseconds; a last bucket catches everything above. */
export const DURATION_BUCKETS_MS: readonly number[] = Object.freeze([
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
]);

const BOUNDS = Float64Array.from(DURATION_BUCKETS_MS);
const BOUND_COUNT = BOUNDS.length;

export class DurationHistogram {
  /** Per-bucket counts (not cumulative); index BOUND_COUNT is the +Inf bucket. */
  readonly counts = new Float64Array(BOUND_COUNT + 1);
  count = 0;
  sumMs = 0;

  record(ms: number): void {
    let i = 0;
    while (i < BOUND_COUNT && ms > BOUNDS[i]) i++;
    this.counts[i]++;
    this.count++;
    this.sumMs += ms;
  }

  get averageMs(): number {
    return this.count === 0 ? 0 : this.sumMs / this.count;
  }

  /**
   * The estimated `q`-quantile (0..1) in ms: the bucket holding the rank, interpolated linearly between its bounds.
   * Values in the +Inf bucket report the last finite bound. 0 when nothing was recorded.
   */
  quantileMs(q: number): number {
    if (this.count === 0) return 0;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i <= BOUND_COUNT; i++) {
      const inBucket = this.counts[i];
      if (inBucket === 0 || seen + inBucket < rank) {
        seen += inBucket;
        continue;
      }
      if (i === BOUND_COUNT) return BOUNDS[BOUND_COUNT - 1];
      const lower = i === 0 ? 0 : BOUNDS[i - 1];
      return lower + (BOUNDS[i] - lower) * ((rank - seen) / inBucket);
    }
    return BOUNDS[BOUND_COUNT - 1];
  }
}

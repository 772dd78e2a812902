// DurationHistogram: bucket placement at the bounds, exact averages, percentile estimates inside the right bucket.
import { describe, expect, it } from 'vitest';
import { DURATION_BUCKETS_MS, DurationHistogram } from '../../../src/stats/duration-histogram.js';

describe('DurationHistogram', () => {
  it('puts a value in the first bucket whose upper bound holds it (bounds inclusive), the rest in +Inf', () => {
    const h = new DurationHistogram();
    h.record(0);
    h.record(0.1);
    h.record(0.1001);
    h.record(1_000_000);
    expect(h.counts[0]).toBe(2);
    expect(h.counts[1]).toBe(1);
    expect(h.counts[DURATION_BUCKETS_MS.length]).toBe(1);
    expect(h.count).toBe(4);
  });

  it('keeps an exact sum and average', () => {
    const h = new DurationHistogram();
    for (const ms of [1, 2, 3, 10]) h.record(ms);
    expect(h.sumMs).toBe(16);
    expect(h.averageMs).toBe(4);
    expect(new DurationHistogram().averageMs).toBe(0);
  });

  it('estimates percentiles inside the bucket holding the rank', () => {
    const h = new DurationHistogram();
    for (let i = 0; i < 90; i++) h.record(0.8); // bucket (0.5, 1]
    for (let i = 0; i < 10; i++) h.record(40); // bucket (25, 50]
    expect(h.quantileMs(0.5)).toBeGreaterThan(0.5);
    expect(h.quantileMs(0.5)).toBeLessThanOrEqual(1);
    expect(h.quantileMs(0.99)).toBeGreaterThan(25);
    expect(h.quantileMs(0.99)).toBeLessThanOrEqual(50);
    expect(h.quantileMs(0.95)).toBeLessThanOrEqual(h.quantileMs(0.99));
    expect(new DurationHistogram().quantileMs(0.99)).toBe(0);
  });

  it('reports the last finite bound for values beyond it', () => {
    const h = new DurationHistogram();
    h.record(120_000);
    expect(h.quantileMs(0.5)).toBe(DURATION_BUCKETS_MS[DURATION_BUCKETS_MS.length - 1]);
  });
});

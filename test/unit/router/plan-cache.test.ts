// Plan cache: LRU order (hits refresh, the oldest goes), counters, capacity 0, failures not cached.
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY_CACHE_LIMIT, PlanCache } from '../../../src/router/plan-cache.js';

describe('PlanCache', () => {
  it("defaults to PgDog's query_cache_limit", () => {
    expect(new PlanCache().capacity).toBe(DEFAULT_QUERY_CACHE_LIMIT);
    expect(DEFAULT_QUERY_CACHE_LIMIT).toBe(1000);
  });

  it('evicts the least recently used entry', () => {
    const c = new PlanCache<number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.stats()).toEqual({ hits: 3, misses: 1, evictions: 1, size: 2, capacity: 2 });
  });

  it('replaces an existing entry without evicting', () => {
    const c = new PlanCache<number>(2);
    c.set('a', 1);
    c.set('b', 2);
    c.set('a', 10);
    expect(c.size).toBe(2);
    expect(c.get('a')).toBe(10);
    expect(c.stats().evictions).toBe(0);
  });

  it('computes once with getOrCreate and does not cache a failure', () => {
    const c = new PlanCache<string>(4);
    let calls = 0;
    const make = (): string => `v${++calls}`;
    expect(c.getOrCreate('q', make)).toBe('v1');
    expect(c.getOrCreate('q', make)).toBe('v1');
    expect(() =>
      c.getOrCreate('bad', () => {
        throw new Error('syntax');
      }),
    ).toThrow('syntax');
    expect(c.size).toBe(1);
    expect(c.stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('caches nothing with capacity 0, and can be cleared', () => {
    const off = new PlanCache<number>(0);
    off.set('a', 1);
    expect(off.get('a')).toBeUndefined();
    const c = new PlanCache<number>(3);
    c.set('a', 1);
    c.clear();
    expect(c.size).toBe(0);
  });

  it('rejects an invalid capacity', () => {
    expect(() => new PlanCache(-1)).toThrow(RangeError);
    expect(() => new PlanCache(1.5)).toThrow(RangeError);
  });
});

// Plan cache: LRU order (hits refresh, the oldest goes), counters, capacity 0, failures not cached.
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY_CACHE_LIMIT, estimatePlanBytes, PlanCache } from '../../../src/router/plan-cache.js';

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
    expect(c.stats()).toMatchObject({ hits: 3, misses: 1, evictions: 1, size: 2, capacity: 2 });
  });

  it('keeps LRU order when one text is hit over and over, then another (the youngest is not moved again)', () => {
    const c = new PlanCache<number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    expect(c.get('a')).toBe(1); // b, c, a
    expect(c.get('a')).toBe(1);
    expect(c.get('b')).toBe(2); // c, a, b
    expect(c.get('b')).toBe(2);
    c.set('d', 4); // evicts c
    expect(c.get('c')).toBeUndefined();
    c.clear();
    c.set('x', 1);
    c.set('y', 2);
    c.set('z', 3);
    expect(c.get('x')).toBe(1); // y, z, x: a hit on the cleared cache's youngest name moved it
    c.set('w', 4); // evicts y
    expect([c.get('y'), c.get('z'), c.get('x'), c.get('w')]).toEqual([undefined, 3, 1, 4]);
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

  it('is bounded by bytes too: long texts evict the oldest entries until the new one fits', () => {
    const c = new PlanCache<number>(1000, 10_000, (sql) => sql.length);
    for (let i = 0; i < 10; i++) c.set(`${i}`.padEnd(2_000, 'x'), i);
    expect(c.size).toBe(5);
    expect(c.stats().bytes).toBe(10_000);
    expect(c.get('9'.padEnd(2_000, 'x'))).toBe(9);
    expect(c.get('4'.padEnd(2_000, 'x'))).toBeUndefined();
    c.set('y'.repeat(20_000), 99); // larger than the whole cache: not kept, nothing evicted for it
    expect(c.size).toBe(5);
    c.set('short', 1);
    expect(c.size).toBe(5); // the oldest went to make room
    c.clear();
    expect(c.stats().bytes).toBe(0);
  });

  it('estimates a plan from its text: a few hundred bytes plus about a dozen per character', () => {
    expect(estimatePlanBytes('select 1')).toBeGreaterThan(512);
    expect(estimatePlanBytes('x'.repeat(20_000))).toBeGreaterThan(200_000);
  });

  it('rejects an invalid capacity', () => {
    expect(() => new PlanCache(-1)).toThrow(RangeError);
    expect(() => new PlanCache(1.5)).toThrow(RangeError);
  });
});

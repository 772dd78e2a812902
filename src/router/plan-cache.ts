// Bounded LRU of SQL text → statement plans (`query_cache_limit`), so each distinct text is parsed and analyzed
// once. A JavaScript Map keeps insertion order: a hit re-inserts the entry at the young end, eviction drops the
// oldest — both O(1). Plans depend on the sharding schema: build a new cache (or clear it) when the config reloads.
import type { StatementPlan } from './plan.js';

/** PgDog's default `query_cache_limit` (pgdog-config general.rs; earlier releases used 50,000). */
export const DEFAULT_QUERY_CACHE_LIMIT = 1000;

export interface PlanCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly size: number;
  readonly capacity: number;
}

export class PlanCache<T = readonly StatementPlan[]> {
  readonly capacity: number;
  private readonly entries = new Map<string, T>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  /** `capacity` 0 disables caching (every lookup misses). */
  constructor(capacity: number = DEFAULT_QUERY_CACHE_LIMIT) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`invalid plan cache capacity ${capacity}`);
    this.capacity = capacity;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value for `sql`, marking it most recently used; undefined on a miss. */
  get(sql: string): T | undefined {
    const v = this.entries.get(sql);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(sql);
    this.entries.set(sql, v);
    return v;
  }

  set(sql: string, value: T): void {
    if (this.capacity === 0) return;
    if (this.entries.has(sql)) this.entries.delete(sql);
    else if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) {
        this.entries.delete(oldest.value);
        this.evictions++;
      }
    }
    this.entries.set(sql, value);
  }

  /** The cached value, or `create()`'s result stored for next time (a throwing `create` caches nothing). */
  getOrCreate(sql: string, create: () => T): T {
    const hit = this.get(sql);
    if (hit !== undefined) return hit;
    const value = create();
    this.set(sql, value);
    return value;
  }

  clear(): void {
    this.entries.clear();
  }

  stats(): PlanCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      size: this.entries.size,
      capacity: this.capacity,
    };
  }
}

// Bounded LRU of SQL text → statement plans, so each distinct text is parsed and analyzed once; bounded by count
// (`query_cache_limit`) and by bytes (`query_cache_size`: the text plus an estimate of its plan, so a client sending
// long distinct texts cannot make it large). A JavaScript Map keeps insertion order: a hit re-inserts the entry at the
// young end, eviction drops the oldest — both O(1). Plans depend on the sharding schema: build a new cache (or clear
// it) when the config reloads.
import type { StatementPlan } from './plan.js';

/** PgDog's default `query_cache_limit` (pgdog-config general.rs; earlier releases used 50,000). */
export const DEFAULT_QUERY_CACHE_LIMIT = 1000;
/** Default `query_cache_size`. */
export const DEFAULT_QUERY_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * What an entry costs: its key, and its plan, which measures (V8 heap) about 0.5 KiB plus 10–12 bytes per character
 * of the text it was made from (table references, rewritten statements, literal values); rounded up.
 */
export function estimatePlanBytes(sql: string): number {
  return 512 + 14 * sql.length;
}

interface Entry<T> {
  readonly value: T;
  readonly bytes: number;
}

export interface PlanCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly size: number;
  readonly capacity: number;
  /** Estimated bytes held, and the limit. */
  readonly bytes: number;
  readonly maxBytes: number;
}

export class PlanCache<T = readonly StatementPlan[]> {
  readonly capacity: number;
  readonly maxBytes: number;
  private readonly estimate: (sql: string) => number;
  private readonly entries = new Map<string, Entry<T>>();
  /** The key at the young end of `entries` (null: unknown): a hit on it moves nothing (one hot text, e.g. pgbench). */
  private youngest: string | null = null;
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  /** `capacity` 0 disables caching (every lookup misses). `estimate`: an entry's bytes from its text. */
  constructor(
    capacity: number = DEFAULT_QUERY_CACHE_LIMIT,
    maxBytes: number = DEFAULT_QUERY_CACHE_BYTES,
    estimate: (sql: string) => number = estimatePlanBytes,
  ) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`invalid plan cache capacity ${capacity}`);
    if (!(maxBytes >= 0)) throw new RangeError(`invalid plan cache size ${maxBytes}`);
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.estimate = estimate;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value for `sql`, marking it most recently used; undefined on a miss. */
  get(sql: string): T | undefined {
    const entry = this.entries.get(sql);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (sql !== this.youngest) {
      this.entries.delete(sql);
      this.entries.set(sql, entry);
      this.youngest = sql;
    }
    return entry.value;
  }

  set(sql: string, value: T): void {
    if (this.capacity === 0) return;
    const bytes = this.estimate(sql);
    if (bytes > this.maxBytes) return; // one text larger than the whole cache: not kept
    const old = this.entries.get(sql);
    if (old !== undefined) {
      this.entries.delete(sql);
      this.bytes -= old.bytes;
    }
    // Oldest first, until the new entry fits both limits.
    for (const [key, entry] of this.entries) {
      if (this.entries.size < this.capacity && this.bytes + bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
      this.evictions++;
    }
    this.entries.set(sql, { value, bytes });
    this.youngest = sql;
    this.bytes += bytes;
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
    this.youngest = null;
    this.bytes = 0;
  }

  stats(): PlanCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      size: this.entries.size,
      capacity: this.capacity,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
    };
  }
}

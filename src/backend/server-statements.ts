// The named statements (sg_<n>) one server connection has prepared, least recently used first, so that
// `prepared_statements_limit` can close the ones used longest ago — and those the proxy's statement cache has dropped —
// when the connection holds too many (PgDog's semantics; PgBouncer's max_prepared_statements is the same idea).

/** What the server set needs to know of a cached statement: whether the proxy's cache still holds it. */
export interface StatementRef {
  /** Set by `evictStatement` only (server sets rely on its count to skip checks). */
  readonly isEvicted: boolean;
  /** A server has prepared it in a batch without an error (`confirm`): its text parses. */
  isConfirmed?: boolean;
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * Statements the proxy's cache has dropped so far, over the whole process (it counts up, never down): a server set that
 * checked its oldest statement at one count need not check it again while the count stays there.
 */
let evictions = 0;

/** The proxy's statement cache dropped `ref` (sets its flag and counts it): servers holding it close it in time. */
export function evictStatement(ref: { isEvicted: boolean }): void {
  ref.isEvicted = true;
  evictions++;
}

export class ServerStatements {
  /** Insertion order is recency: `use` re-inserts at the young end. */
  private readonly byName = new Map<string, StatementRef>();
  /** The name at the young end of `byName` (null: unknown): using it again moves nothing. */
  private youngest: string | null = null;
  /**
   * The name at the old end of `byName` when `takeVictims` last found it kept (within the limit and not evicted), and
   * the eviction count then: while both hold, nothing can be a victim within the limit (no Map iterator made).
   */
  private oldest: string | null = null;
  private oldestCheckedAt = -1;

  get size(): number {
    return this.byName.size;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The statement is used now (a Bind or Describe of it): it becomes the most recently used. */
  use(name: string): void {
    if (name === this.youngest) return; // the common case (one statement used over and over): no Map churn
    const ref = this.byName.get(name);
    if (ref === undefined) return;
    this.byName.delete(name);
    this.byName.set(name, ref);
    this.youngest = name;
    if (name === this.oldest) this.oldest = null;
  }

  add(name: string, ref: StatementRef): void {
    this.byName.delete(name);
    this.byName.set(name, ref);
    this.youngest = name;
    if (name === this.oldest) this.oldest = null;
  }

  /** The batch that prepared `name` ended without an error: the statement's text is known to parse. */
  confirm(name: string): void {
    const ref = this.byName.get(name);
    if (ref !== undefined) ref.isConfirmed = true;
  }

  delete(name: string): void {
    this.byName.delete(name);
    if (name === this.youngest) this.youngest = null;
    if (name === this.oldest) this.oldest = null;
  }

  clear(): void {
    this.byName.clear();
    this.youngest = null;
    this.oldest = null;
  }

  /**
   * Forget and return (to be closed on the server) the least recently used names beyond `limit`, and those at the old
   * end the proxy's cache no longer holds; at most `max` at a time.
   */
  takeVictims(limit: number, max: number): readonly string[] {
    const size = this.byName.size;
    if (size === 0) return NONE; // nothing prepared (unnamed statements only): no iterator made
    // Within the limit, only the oldest can go (when evicted): it is the one found kept, and nothing was evicted since.
    if (size <= limit && this.oldest !== null && this.oldestCheckedAt === evictions) return NONE;
    let out: string[] | null = null;
    for (const [name, ref] of this.byName) {
      const taken = out === null ? 0 : out.length;
      if (taken >= max) break;
      if (size - taken <= limit && !ref.isEvicted) {
        this.oldest = name;
        this.oldestCheckedAt = evictions;
        break;
      }
      (out ??= []).push(name);
    }
    if (out === null) return NONE;
    for (const name of out) this.delete(name);
    return out;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}

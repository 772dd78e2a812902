// The named statements (sg_<n>) one server connection has prepared, least recently used first, so that
// `prepared_statements_limit` can close the ones used longest ago — and those the proxy's statement cache has dropped —
// when the connection holds too many (PgDog's semantics; PgBouncer's max_prepared_statements is the same idea).

/** What the server set needs to know of a cached statement: whether the proxy's cache still holds it. */
export interface StatementRef {
  readonly isEvicted: boolean;
}

const NONE: readonly string[] = Object.freeze([]);

export class ServerStatements {
  /** Insertion order is recency: `use` re-inserts at the young end. */
  private readonly byName = new Map<string, StatementRef>();
  /** The name at the young end of `byName` (null: unknown): using it again moves nothing. */
  private youngest: string | null = null;

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
  }

  add(name: string, ref: StatementRef): void {
    this.byName.delete(name);
    this.byName.set(name, ref);
    this.youngest = name;
  }

  delete(name: string): void {
    this.byName.delete(name);
    if (name === this.youngest) this.youngest = null;
  }

  clear(): void {
    this.byName.clear();
    this.youngest = null;
  }

  /**
   * Forget and return (to be closed on the server) the least recently used names beyond `limit`, and those at the old
   * end the proxy's cache no longer holds; at most `max` at a time.
   */
  takeVictims(limit: number, max: number): readonly string[] {
    if (this.byName.size === 0) return NONE; // nothing prepared (unnamed statements only): no iterator made
    let out: string[] | null = null;
    for (const [name, ref] of this.byName) {
      const taken = out === null ? 0 : out.length;
      if (taken >= max || (this.byName.size - taken <= limit && !ref.isEvicted)) break;
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

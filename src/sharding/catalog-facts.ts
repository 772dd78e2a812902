// What the router learns from the shards' catalogs about names the config does not mention, once per database: which
// relations are views (or materialized views) over sharded tables — read like those tables — or temporary, and which
// functions may change data (volatile, neither built in nor from an extension) and whether shardgate can tell where
// they must run. Looked up on first use (engine/catalog-lookup.ts), forgotten on DDL. Pure data.

/** A relation the config does not name. */
export interface RelationFacts {
  /** pg_class.relkind ('r' table, 'v' view, 'm' materialized view, …); null: no such relation (yet). */
  readonly relkind: string | null;
  /** A temporary relation: a transaction that used it cannot PREPARE TRANSACTION. */
  readonly isTemporary: boolean;
  /** A view or materialized view that reads a sharded table, directly or through other views. */
  readonly readsSharded: boolean;
}

/** A function called by name, over all its overloads. */
export interface FunctionFacts {
  /** Some overload is volatile and neither built in nor part of an extension: a call may change data. */
  readonly mayWrite: boolean;
  /**
   * Why shardgate cannot tell where such a function must run — its body cannot be read (another language, SQL built
   * at run time) or it uses a sharded table — or null.
   */
  readonly opaqueReason: string | null;
}

export class CatalogFacts {
  /** By the name as a statement writes it (`schema.table` or `table`, folded as PostgreSQL folds it). */
  readonly relations = new Map<string, RelationFacts>();
  /** By the function's name (its last part, folded). */
  readonly functions = new Map<string, FunctionFacts>();

  /** The catalog may have changed (DDL through the proxy): learn again on next use. */
  clear(): void {
    this.relations.clear();
    this.functions.clear();
  }
}

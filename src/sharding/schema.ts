// What the router needs to know about sharding, derived from pgdog.toml: which columns shard which tables, with
// what key type and function, and which tables are copied to every shard. Pure data, built once per config
// (sharding/schema-from-config.ts). Names are kept exactly as written in pgdog.toml and compared as PostgreSQL
// stores them: an unquoted SQL identifier is folded to lower case, so `Orders` in the config only matches "Orders".

import type { CatalogFacts } from './catalog-facts.js';

/** Key types the sharding functions accept (PgDog's data_type; "varchar" is read as text). */
export type ShardKeyType = 'bigint' | 'integer' | 'text' | 'uuid';

/**
 * How a key maps to a shard: PostgreSQL-compatible hash (default), or explicit list/range mappings. Values are
 * normalized text: integers in decimal, uuids in lower-case 8-4-4-4-12 form, text as is. Range `start` is inclusive,
 * `end` exclusive, null = unbounded. `defaultShard` takes keys no entry matches (PgDog's kind = "default");
 * null = such keys are an error.
 */
export type ShardFunction =
  | { kind: 'hash' }
  | { kind: 'list'; entries: { values: string[]; shard: number }[]; defaultShard: number | null }
  | {
      kind: 'range';
      entries: { start: string | null; end: string | null; shard: number }[];
      defaultShard: number | null;
    };

/** One `[[sharded_tables]]` entry: `table` null means "any table with this column" (PgDog's column-based form). */
export interface ShardedColumn {
  database: string;
  schema: string | null;
  table: string | null;
  column: string;
  keyType: ShardKeyType;
  fn: ShardFunction;
}

/** A column a sequence fills by default (its `serial` / `nextval()` default, or an identity). */
export interface GeneratedColumn {
  readonly column: string;
  /** The sequence, as a regclass literal's text (`public.users_id_seq`, quoted where needed). */
  readonly sequence: string;
  /** GENERATED ALWAYS AS IDENTITY: a value the proxy supplies needs OVERRIDING SYSTEM VALUE. */
  readonly isAlways: boolean;
}

export interface ShardingSchema {
  database: string;
  shardCount: number;
  shardedColumns: ShardedColumn[];
  /** Tables named in `[[omnisharded_tables]]`, as written (unqualified, or "schema.table" when written so). */
  omnishardedTables: Set<string>;
  /**
   * Column order of sharded tables, learned from a shard when an INSERT lists no columns (key: `schema.table` or
   * `table`, as the statement names it). Cleared on DDL, together with the plans that used it.
   */
  tableColumns?: Map<string, readonly string[]>;
  /**
   * The columns of a sharded table whose default is a sequence (`serial`, `nextval(…)`) or an identity, learned with
   * `tableColumns` (same key): the proxy fills them from the sequence of record when an INSERT leaves them out.
   */
  generatedColumns?: Map<string, readonly GeneratedColumn[]>;
  /**
   * What the shards' catalogs say about relations and functions the config does not name (views over sharded tables,
   * temporary tables, functions that may write), learned on first use. Undefined: nothing is looked up (the router
   * then treats unnamed relations as copied tables and user functions as read-only).
   */
  catalog?: CatalogFacts;
}

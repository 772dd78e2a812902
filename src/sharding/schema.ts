// What the router needs to know about sharding, derived from pgdog.toml: which columns shard which tables, with
// what key type and function, and which tables are copied to every shard. Pure data, built once per config.

/** Key types the sharding functions accept (PgDog's data_type; "varchar" is read as text). */
export type ShardKeyType = 'bigint' | 'integer' | 'text' | 'uuid';

/** How a key maps to a shard: PostgreSQL-compatible hash (default), or explicit list/range mappings. */
export type ShardFunction =
  | { kind: 'hash' }
  | { kind: 'list'; entries: { values: string[]; shard: number }[] }
  | { kind: 'range'; entries: { start: string | null; end: string | null; shard: number }[] };

/** One `[[sharded_tables]]` entry: `table` null means "any table with this column" (PgDog's column-based form). */
export interface ShardedColumn {
  database: string;
  schema: string | null;
  table: string | null;
  column: string;
  keyType: ShardKeyType;
  fn: ShardFunction;
}

export interface ShardingSchema {
  database: string;
  shardCount: number;
  shardedColumns: ShardedColumn[];
  /** Tables (lower-case, unqualified or schema-qualified) named in `[[omnisharded_tables]]`. */
  omnishardedTables: Set<string>;
}

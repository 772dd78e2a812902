// Config → ShardingSchema for one logical database: its shard count, its sharded columns with their key type and
// ShardFunction (hash unless list/range mappings are configured), and its omnisharded tables. Names stay as written
// in pgdog.toml (PostgreSQL's stored form: write unquoted identifiers in lower case).

import { keyTypeOf } from '../config/sharding-mappings.js';
import type { Config, ShardedMappingConfig, ShardedTableConfig, ShardKeyLiteral } from '../config/types.js';
import type { ShardedColumn, ShardFunction, ShardingSchema } from './schema.js';

/** The sharding schema of `database` (a [[databases]] name). Throws if no [[databases]] entry has that name. */
export function shardingSchemaFor(config: Config, database: string): ShardingSchema {
  const shards = config.databases.filter((entry) => entry.name === database).map((entry) => entry.shard);
  if (shards.length === 0) throw new Error(`no [[databases]] entry is named ${JSON.stringify(database)}`);
  const omnisharded = config.omnishardedTables.filter((entry) => entry.database === database);
  return {
    database,
    shardCount: Math.max(...shards) + 1,
    shardedColumns: config.shardedTables.filter((table) => table.database === database).map(shardedColumnOf),
    omnishardedTables: new Set(omnisharded.flatMap((entry) => entry.tables)),
  };
}

function shardedColumnOf(table: ShardedTableConfig): ShardedColumn {
  return {
    database: table.database,
    schema: table.schema,
    table: table.name,
    column: table.column,
    keyType: keyTypeOf(table.dataType),
    fn: shardFunctionOf(table.mappings),
  };
}

/** No rules: hash. Range rules: range. Otherwise (list rules and/or a default): list. */
function shardFunctionOf(rules: ShardedMappingConfig[]): ShardFunction {
  if (rules.length === 0) return { kind: 'hash' };
  const defaultShard = rules.find((rule) => rule.kind === 'default')?.shard ?? null;
  if (rules.some((rule) => rule.kind === 'range')) {
    const entries = rules
      .filter((rule) => rule.kind === 'range')
      .map((rule) => ({ start: normalized(rule.start), end: normalized(rule.end), shard: rule.shard }));
    return { kind: 'range', entries, defaultShard };
  }
  const entries = rules
    .filter((rule) => rule.kind === 'list')
    .map((rule) => ({ values: rule.values.map(String), shard: rule.shard }));
  return { kind: 'list', entries, defaultShard };
}

/** Config literals are already normalized (uuids canonical); integers become decimal text. */
function normalized(value: ShardKeyLiteral | null): string | null {
  return value === null ? null : String(value);
}

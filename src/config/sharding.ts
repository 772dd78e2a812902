// pgdog.toml's sharding sections → typed, validated config: [[sharded_tables]] (with nested
// [[sharded_tables.mapping]] rules), [[sharded_mappings]] (attached to their table) and [[omnisharded_tables]].
// The rules themselves are read and checked in sharding-mappings.ts.
// Every mistake is a ConfigError naming the key; names are kept exactly as written.

import { type ConfigWarning } from './config-error.js';
import {
  SHARDED_DATA_TYPE_DEFAULT,
  SHARDED_DATA_TYPES,
  SUPPORTED_NESTED_MAPPING_KEYS,
  SUPPORTED_OMNISHARDED_KEYS,
  SUPPORTED_SHARDED_MAPPING_KEYS,
  SUPPORTED_SHARDED_TABLE_KEYS,
  UNSUPPORTED_OMNISHARDED_KEYS,
  UNSUPPORTED_SHARDED_TABLE_KEYS,
} from './defaults.js';
import { checkRules, describeTable, oneOf, readRule, type TableRef } from './sharding-mappings.js';
import { describeValue, SectionReader } from './toml-values.js';
import type {
  DatabaseConfig,
  OmnishardedTablesConfig,
  ShardedDataType,
  ShardedTableConfig,
} from './types.js';

export interface ShardingConfig {
  shardedTables: ShardedTableConfig[];
  omnishardedTables: OmnishardedTablesConfig[];
}

/** Shard count per database name (highest shard + 1; load.ts already checked there are no gaps). */
type ShardCounts = ReadonlyMap<string, number>;

export function readSharding(
  root: SectionReader,
  databases: DatabaseConfig[],
  warnings: ConfigWarning[],
): ShardingConfig {
  const shardCounts = shardCountsOf(databases);
  const shardedTables = root.tables('sharded_tables').map((table, index) => {
    const r = new SectionReader(root.file, `sharded_tables[${index}]`, table);
    return readShardedTable(r, shardCounts, warnings);
  });
  checkDuplicateTables(root, shardedTables);
  root.tables('sharded_mappings').forEach((table, index) => {
    const r = new SectionReader(root.file, `sharded_mappings[${index}]`, table);
    attachShardedMapping(r, shardedTables, shardCounts, warnings);
  });
  for (const table of shardedTables) checkRules(root.file, table);
  const omnishardedTables = root.tables('omnisharded_tables').map((table, index) => {
    const r = new SectionReader(root.file, `omnisharded_tables[${index}]`, table);
    return readOmnisharded(r, shardCounts, warnings);
  });
  checkOmnishardedConflicts(root, shardedTables, omnishardedTables);
  return { shardedTables, omnishardedTables };
}

function shardCountsOf(databases: DatabaseConfig[]): ShardCounts {
  const counts = new Map<string, number>();
  for (const { name, shard } of databases) counts.set(name, Math.max(counts.get(name) ?? 0, shard + 1));
  return counts;
}

// ---- [[sharded_tables]] ----

function readShardedTable(
  r: SectionReader,
  shardCounts: ShardCounts,
  warnings: ConfigWarning[],
): ShardedTableConfig {
  const database = readDatabaseName(r, shardCounts);
  const table: ShardedTableConfig = {
    database,
    name: readTableName(r, 'name'),
    schema: readOptionalName(r, 'schema', 'a schema name (string); leave it out to match every schema'),
    column: r.requiredString('column', 'the name of the sharded column (string)'),
    dataType: readDataType(r),
    isPrimary: r.boolean('primary') ?? false,
    mappings: [],
  };
  checkHasher(r);
  table.mappings = r.tables('mapping').map((entry, index) => {
    const mr = new SectionReader(r.file, `${r.path}.mapping[${index}]`, entry);
    const rule = readRule(mr, false, table, shardCounts.get(database) ?? 0);
    warnings.push(...mr.warnAboutUnusedKeys(new Set(), SUPPORTED_NESTED_MAPPING_KEYS));
    return rule;
  });
  warnings.push(...upperCaseWarnings(r, { name: table.name, schema: table.schema, column: table.column }));
  warnings.push(...r.warnAboutUnusedKeys(UNSUPPORTED_SHARDED_TABLE_KEYS, SUPPORTED_SHARDED_TABLE_KEYS));
  return table;
}

function readDatabaseName(r: SectionReader, shardCounts: ShardCounts): string {
  const database = r.requiredString('database', 'the name of a [[databases]] entry (string)');
  if (!shardCounts.has(database)) {
    const known = [...shardCounts.keys()].map((name) => JSON.stringify(name)).join(', ');
    const problem = `database ${JSON.stringify(database)} is not defined in [[databases]]`;
    throw r.error('database', problem, `the name of a [[databases]] entry (one of ${known})`);
  }
  return database;
}

function readOptionalName(r: SectionReader, key: string, expected: string): string | null {
  return r.has(key) ? r.requiredString(key, expected) : null;
}

/** A table name without schema: PgDog documents that `name` must not contain it. */
function readTableName(r: SectionReader, key: string): string | null {
  const name = readOptionalName(
    r,
    key,
    'a table name (string); leave it out to match every table with the column',
  );
  if (name !== null && name.includes('.')) {
    const [schema] = name.split('.');
    throw r.error(
      key,
      `${JSON.stringify(name)} includes a schema`,
      `the table name alone, with the schema in its own key (schema = ${JSON.stringify(schema)})`,
    );
  }
  return name;
}

function readDataType(r: SectionReader): ShardedDataType {
  if (r.has('data_type') && r.raw('data_type') === 'vector') {
    throw r.error(
      'data_type',
      '"vector" (centroid sharding) is not supported by shardgate',
      oneOf(SHARDED_DATA_TYPES),
    );
  }
  return r.oneOf('data_type', SHARDED_DATA_TYPES) ?? SHARDED_DATA_TYPE_DEFAULT;
}

/** PgDog's `hasher`: only "postgres" (the default) places rows where PostgreSQL's PARTITION BY HASH does. */
function checkHasher(r: SectionReader): void {
  const hasher = r.oneOf('hasher', ['postgres', 'sha1'] as const);
  if (hasher === 'sha1') {
    throw r.error(
      'hasher',
      '"sha1" is not supported by shardgate',
      '"postgres" (the default), or leave it out',
    );
  }
}

function checkDuplicateTables(root: SectionReader, tables: ShardedTableConfig[]): void {
  const seen = new Map<string, number>();
  tables.forEach((table, index) => {
    const identity = JSON.stringify([table.database, table.schema, table.name, table.column]);
    const first = seen.get(identity);
    if (first === undefined) {
      seen.set(identity, index);
      return;
    }
    const problem = `${describeTable(table)} is already sharded by sharded_tables[${first}]`;
    throw root.errorAt(
      `sharded_tables[${index}]`,
      problem,
      'one [[sharded_tables]] entry per (database, schema, table, column)',
    );
  });
}

// ---- mapping rules ----

/** A `[[sharded_mappings]]` entry: find its `[[sharded_tables]]` entry, read the rule, attach it there. */
function attachShardedMapping(
  r: SectionReader,
  tables: ShardedTableConfig[],
  shardCounts: ShardCounts,
  warnings: ConfigWarning[],
): void {
  const database = readDatabaseName(r, shardCounts);
  const column = r.requiredString('column', 'the name of a column in [[sharded_tables]] (string)');
  const name = readTableName(r, 'table');
  const schema = readOptionalName(r, 'schema', 'a schema name (string)');
  const table = findShardedTable(r, tables, { database, column, name, schema });
  table.mappings.push(readRule(r, true, table, shardCounts.get(database) ?? 0));
  warnings.push(...upperCaseWarnings(r, { table: name, schema, column }));
  warnings.push(...r.warnAboutUnusedKeys(new Set(), SUPPORTED_SHARDED_MAPPING_KEYS));
}

/** Same database, column and table (both unset for a column-only entry); schema, when given, must agree too. */
function findShardedTable(r: SectionReader, tables: ShardedTableConfig[], ref: TableRef): ShardedTableConfig {
  const matches = tables.filter(
    (table) =>
      table.database === ref.database &&
      table.column === ref.column &&
      table.name === ref.name &&
      (ref.schema === null || table.schema === ref.schema),
  );
  const expected = 'database, table, schema and column of a [[sharded_tables]] entry';
  if (matches.length === 0) {
    throw r.error(null, `no [[sharded_tables]] entry for ${describeTable(ref)}`, expected);
  }
  if (matches.length > 1) {
    const problem = `${describeTable(ref)} matches ${matches.length} [[sharded_tables]] entries`;
    throw r.error('schema', problem, 'schema = the schema of one of them');
  }
  return matches[0];
}

// ---- [[omnisharded_tables]] ----

function readOmnisharded(
  r: SectionReader,
  shardCounts: ShardCounts,
  warnings: ConfigWarning[],
): OmnishardedTablesConfig {
  const database = readDatabaseName(r, shardCounts);
  const raw = r.raw('tables');
  const expected = 'an array of table names (strings)';
  if (raw === undefined) throw r.error('tables', 'missing', expected);
  if (!Array.isArray(raw)) throw r.error('tables', `got ${describeValue(raw, false)}`, expected);
  const tables = raw.map((name: unknown, index) => {
    if (typeof name !== 'string' || name.trim() === '') {
      throw r.errorAt(
        `${r.keyPath('tables')}[${index}]`,
        `got ${describeValue(name, false)}`,
        'a table name (string)',
      );
    }
    return name;
  });
  tables.forEach((name, index) => warnings.push(...upperCaseWarnings(r, { [`tables[${index}]`]: name })));
  warnings.push(...r.warnAboutUnusedKeys(UNSUPPORTED_OMNISHARDED_KEYS, SUPPORTED_OMNISHARDED_KEYS));
  return { database, tables };
}

/** A table cannot be both sharded (by name) and copied to every shard. */
function checkOmnishardedConflicts(
  root: SectionReader,
  sharded: ShardedTableConfig[],
  omnisharded: OmnishardedTablesConfig[],
): void {
  omnisharded.forEach((entry, index) => {
    entry.tables.forEach((name, tableIndex) => {
      const conflict = sharded.findIndex(
        (table) =>
          table.database === entry.database &&
          table.name !== null &&
          (name === table.name || (table.schema !== null && name === `${table.schema}.${table.name}`)),
      );
      if (conflict === -1) return;
      const problem = `table ${JSON.stringify(name)} is sharded by sharded_tables[${conflict}]`;
      throw root.errorAt(
        `omnisharded_tables[${index}].tables[${tableIndex}]`,
        problem,
        'a table that is not sharded',
      );
    });
  });
}

// ---- messages ----

/** Names with upper-case letters only match quoted identifiers in SQL: worth a warning. */
function upperCaseWarnings(r: SectionReader, names: Record<string, string | null>): ConfigWarning[] {
  return Object.entries(names).flatMap(([key, name]) =>
    name !== null && name !== name.toLowerCase()
      ? [
          {
            file: r.file,
            key: key.includes('[') ? `${r.path}.${key}` : r.keyPath(key),
            message: `${JSON.stringify(name)} has upper-case letters: it only matches the quoted identifier in SQL (unquoted names are folded to lower case)`,
          },
        ]
      : [],
  );
}

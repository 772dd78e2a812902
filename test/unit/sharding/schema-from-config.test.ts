// shardingSchemaFor: one database's shard count, sharded columns (key type + function) and omnisharded tables,
// built from a parsed pgdog.toml; the result routes keys end to end.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { hashShard } from '../../../src/sharding/hash.js';
import { shardingSchemaFor } from '../../../src/sharding/schema-from-config.js';
import { shardForLiteral } from '../../../src/sharding/shard-of.js';

const PGDOG = `
[admin]
password = "x"

[[databases]]
name = "prod"
host = "127.0.0.1"
shard = 0

[[databases]]
name = "prod"
host = "127.0.0.1"
shard = 1

[[databases]]
name = "prod"
host = "127.0.0.1"
shard = 2

[[databases]]
name = "prod"
host = "127.0.0.2"
shard = 2
role = "replica"

[[databases]]
name = "other"
host = "127.0.0.1"

[[sharded_tables]]
database = "prod"
name = "orders"
column = "customer_id"

[[sharded_tables]]
database = "prod"
schema = "geo"
name = "cities"
column = "country"
data_type = "varchar"

[[sharded_tables.mapping]]
values = ["FR", "DE"]
shard = 0

[[sharded_tables.mapping]]
values = ["US"]
shard = 1

[[sharded_tables.mapping]]
shard = 2

[[sharded_tables]]
database = "prod"
column = "tenant_id"
data_type = "integer"

[[sharded_mappings]]
database = "prod"
column = "tenant_id"
kind = "range"
end = 1000
shard = 0

[[sharded_mappings]]
database = "prod"
column = "tenant_id"
kind = "range"
start = 1000
shard = 2

[[sharded_tables]]
database = "other"
column = "id"
data_type = "uuid"

[[omnisharded_tables]]
database = "prod"
tables = ["countries", "geo.regions"]

[[omnisharded_tables]]
database = "prod"
tables = ["settings"]

[[omnisharded_tables]]
database = "other"
tables = ["elsewhere"]
`;

const USERS = '[[users]]\nname = "a"\ndatabase = "prod"\npassword = "p"\n';
const { config } = parseConfig(PGDOG, USERS, { configPath: 'pgdog.toml', usersPath: 'users.toml' });

describe('shardingSchemaFor', () => {
  const schema = shardingSchemaFor(config, 'prod');

  it('counts shards (replicas do not add any) and keeps only this database', () => {
    expect(schema.database).toBe('prod');
    expect(schema.shardCount).toBe(3);
    expect(schema.shardedColumns.map((column) => column.column)).toEqual([
      'customer_id',
      'country',
      'tenant_id',
    ]);
    expect(shardingSchemaFor(config, 'other').shardCount).toBe(1);
  });

  it('builds hash, list (with default) and range functions with normalized values', () => {
    expect(schema.shardedColumns).toEqual([
      {
        database: 'prod',
        schema: null,
        table: 'orders',
        column: 'customer_id',
        keyType: 'bigint',
        fn: { kind: 'hash' },
      },
      {
        database: 'prod',
        schema: 'geo',
        table: 'cities',
        column: 'country',
        keyType: 'text',
        fn: {
          kind: 'list',
          entries: [
            { values: ['FR', 'DE'], shard: 0 },
            { values: ['US'], shard: 1 },
          ],
          defaultShard: 2,
        },
      },
      {
        database: 'prod',
        schema: null,
        table: null,
        column: 'tenant_id',
        keyType: 'integer',
        fn: {
          kind: 'range',
          entries: [
            { start: null, end: '1000', shard: 0 },
            { start: '1000', end: null, shard: 2 },
          ],
          defaultShard: null,
        },
      },
    ]);
  });

  it('collects the omnisharded tables of this database, as written', () => {
    expect(schema.omnishardedTables).toEqual(new Set(['countries', 'geo.regions', 'settings']));
  });

  it('routes keys end to end', () => {
    const [orders, cities, tenants] = schema.shardedColumns;
    expect(shardForLiteral(orders, schema.shardCount, '42')).toBe(hashShard('bigint', 42n, 3));
    expect(shardForLiteral(cities, schema.shardCount, 'US')).toBe(1);
    expect(shardForLiteral(cities, schema.shardCount, 'JP')).toBe(2);
    expect(shardForLiteral(tenants, schema.shardCount, '999')).toBe(0);
    expect(shardForLiteral(tenants, schema.shardCount, '1000')).toBe(2);
  });

  it('refuses a database that is not configured', () => {
    expect(() => shardingSchemaFor(config, 'nope')).toThrow(/no \[\[databases\]\] entry/);
  });
});

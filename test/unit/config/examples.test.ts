// The shipped example files parse without warnings, and PgDog-style files are accepted.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatConfigWarning } from '../../../src/config/config-error.js';
import { loadConfig, parseConfig } from '../../../src/config/load.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');

describe('shipped example configurations', () => {
  it('pgdog.toml.example + users.toml.example parse without warnings', () => {
    const { config, warnings } = loadConfig({
      configPath: join(ROOT, 'pgdog.toml.example'),
      usersPath: join(ROOT, 'users.toml.example'),
    });
    expect(warnings.map(formatConfigWarning)).toEqual([]);
    expect(config.databases).toHaveLength(1);
    expect(config.users).toHaveLength(1);
  });

  it('config/1-shard: one database "shardgate" on 127.0.0.1:5432', () => {
    const { config, warnings } = loadConfig({
      configPath: join(ROOT, 'config/1-shard/pgdog.toml'),
      usersPath: join(ROOT, 'config/1-shard/users.toml'),
    });
    expect(warnings.map(formatConfigWarning)).toEqual([]);
    expect(config.databases).toEqual([
      expect.objectContaining({
        name: 'shardgate',
        host: '127.0.0.1',
        port: 5432,
        shard: 0,
        role: 'primary',
      }),
    ]);
  });

  it('config/2-shards: shards 0 and 1 on ports 5432 and 5433', () => {
    const { config, warnings } = loadConfig({
      configPath: join(ROOT, 'config/2-shards/pgdog.toml'),
      usersPath: join(ROOT, 'config/2-shards/users.toml'),
    });
    expect(warnings.map(formatConfigWarning)).toEqual([]);
    expect(config.databases.map((d) => [d.name, d.port, d.shard, d.role])).toEqual([
      ['shardgate', 5432, 0, 'primary'],
      ['shardgate', 5433, 1, 'primary'],
    ]);
    expect(config.shardedTables.map((t) => [t.name, t.column, t.dataType, t.mappings.length])).toEqual([
      ['orders', 'customer_id', 'bigint', 0],
      ['order_items', 'customer_id', 'bigint', 0],
    ]);
    expect(config.omnishardedTables).toEqual([{ database: 'shardgate', tables: ['countries'] }]);
  });

  it('pgdog.toml.example: the commented sharding examples are valid once uncommented', () => {
    const text = readFileSync(join(ROOT, 'pgdog.toml.example'), 'utf8');
    const start = text.indexOf('# [[sharded_tables]]');
    const uncommented = `${text.slice(0, start)}${text
      .slice(start)
      .split('\n')
      .map((line) => (/^# (\[|[a-z_]+ = )/.test(line) ? line.slice(2) : line))
      .join('\n')}`;
    const users = readFileSync(join(ROOT, 'users.toml.example'), 'utf8');
    const { config, warnings } = parseConfig(uncommented, users, {
      configPath: 'pgdog.toml',
      usersPath: 'users.toml',
    });
    expect(warnings.map(formatConfigWarning)).toEqual([]);
    expect(config.shardedTables.map((t) => [t.name, t.mappings.map((m) => m.kind)])).toEqual([
      ['orders', []],
      ['events', ['list', 'default', 'list']],
    ]);
    expect(config.omnishardedTables).toHaveLength(1);
  });
});

// Written in the style of PgDog's own example.pgdog.toml / example.users.toml: a mix of keys we
// implement, keys we only recognise, and a sharded cluster with replicas and sharding rules.
const PGDOG_STYLE_CONFIG = `
[general]
host = "0.0.0.0"
port = 6432
workers = 2
default_pool_size = 10
min_pool_size = 1
pooler_mode = "transaction"
healthcheck_interval = 30_000
idle_healthcheck_interval = 30_000
ban_timeout = 300_000
load_balancing_strategy = "random"
tls_verify = "disabled"
shutdown_timeout = 60_000
openmetrics_port = 9090
prepared_statements = "extended"
query_cache_limit = 1_000
passthrough_auth = "disabled"
connect_timeout = 5_000
connect_attempts = 1
query_timeout = 60_000
checkout_timeout = 5_000
dry_run = false
idle_timeout = 60_000
client_idle_timeout = 60_000
auth_type = "scram"
cross_shard_disabled = false

[admin]
name = "admin"
password = "pgdog"
user = "admin"

[[databases]]
name = "pgdog"
host = "127.0.0.1"
port = 5432
role = "primary"

[[databases]]
name = "pgdog"
host = "127.0.0.1"
port = 5433
role = "replica"

[tcp]
retries = 3
time = 1000

[[databases]]
name = "pgdog_sharded"
host = "127.0.0.1"
database_name = "shard_0"
shard = 0

[[databases]]
name = "pgdog_sharded"
host = "127.0.0.1"
database_name = "shard_1"
shard = 1

[[databases]]
name = "pgdog_sharded"
host = "127.0.0.1"
database_name = "shard_1"
shard = 1
role = "replica"
read_only = true

[[sharded_tables]]
database = "pgdog_sharded"
name = "sharded"
column = "id"
data_type = "bigint"
primary = true

[[sharded_mappings]]
database = "pgdog_sharded"
table = "sharded"
column = "id"
kind = "list"
values = [1, 2, 3]
shard = 0

[[manual_queries]]
fingerprint = "0123456789abcdef"
`;

const PGDOG_STYLE_USERS = `
[[users]]
name = "pgdog"
database = "pgdog"
password = "pgdog"

[[users]]
name = "pgdog"
database = "pgdog_sharded"
password = "pgdog"
`;

describe('PgDog-style configuration', () => {
  const { config, warnings } = parseConfig(PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, {
    configPath: 'pgdog.toml',
    usersPath: 'users.toml',
  });

  it('parses, keeping what we implement', () => {
    expect(config.general.queryTimeoutMs).toBe(60_000);
    expect(config.general.clientIdleTimeoutMs).toBe(60_000);
    expect(config.databases).toHaveLength(5);
    expect(config.users.map((u) => u.database)).toEqual(['pgdog', 'pgdog_sharded']);
    expect(config.shardedTables).toHaveLength(1);
    expect(config.shardedTables[0].mappings).toEqual([
      expect.objectContaining({ kind: 'list', values: [1n, 2n, 3n], shard: 0 }),
    ]);
  });

  it('only warns about recognized-but-unsupported settings', () => {
    expect(warnings.length).toBeGreaterThan(0);
    for (const warning of warnings) {
      expect(warning.message).toBe('recognized PgDog setting, not supported yet; ignored');
    }
    expect(warnings.map((w) => w.key)).toEqual(
      expect.arrayContaining(['general.workers', 'databases[4].read_only', 'tcp', 'manual_queries']),
    );
  });
});

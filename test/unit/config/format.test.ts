// formatEffectiveConfig: PgDog key names, every default shown, passwords never printed.
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { configSettings, formatEffectiveConfig, REDACTED } from '../../../src/config/format.js';
import { parse } from './helpers.js';

const PGDOG = `[admin]
password = "admin-secret"

[[databases]]
name = "prod"
host = "127.0.0.1"
password = "db-secret"

[[databases]]
name = "prod"
host = "127.0.0.1"
port = 5433
shard = 1

[[sharded_tables]]
database = "prod"
column = "id"
data_type = "bigint"
`;

const USERS = `[[users]]
name = "alice"
database = "prod"
password = "alice-secret"
server_password = "server-secret"
`;

describe('formatEffectiveConfig', () => {
  const text = formatEffectiveConfig(parse(PGDOG, USERS).config);

  it('redacts every password', () => {
    for (const secret of ['admin-secret', 'db-secret', 'alice-secret', 'server-secret']) {
      expect(text).not.toContain(secret);
    }
    expect(text.match(/= "\[redacted\]"/g)).toHaveLength(4);
  });

  it('uses PgDog key names with defaults filled in', () => {
    expect(text).toContain('[general]\nhost = "0.0.0.0"\nport = 6432\ndefault_pool_size = 10');
    expect(text).toContain('checkout_timeout = 5000');
    expect(text).toContain('max_message_size = 67108864');
    expect(text).toContain('# tls_certificate = (not set)');
    expect(text).toContain('database_name = "prod"');
    expect(text).toContain('# pool_size = (not set: general.default_pool_size)');
  });

  it('is valid TOML that round-trips the settings', () => {
    const reparsed = parseToml(text) as Record<string, unknown>;
    expect(Object.keys(reparsed)).toEqual(['general', 'admin', 'databases', 'users', 'sharded_tables']);
    expect((reparsed.databases as unknown[]).length).toBe(2);
    expect(reparsed.sharded_tables).toEqual([
      { database: 'prod', column: 'id', data_type: 'bigint', primary: false },
    ]);
  });

  it('shows the operations settings', () => {
    expect(text).toContain('# openmetrics_port = (not set: OpenMetrics endpoint off)');
    expect(text).toContain('openmetrics_namespace = "shardgate_"');
    expect(text).toContain('shutdown_timeout = 60000');
  });
});

describe('configSettings (SHOW CONFIG)', () => {
  const rows = configSettings(parse(PGDOG, USERS).config);

  it('lists every setting by section and key, passwords redacted', () => {
    expect(rows).toContainEqual({ section: 'general', key: 'port', value: '6432' });
    expect(rows).toContainEqual({ section: 'databases[1]', key: 'port', value: '5433' });
    expect(rows).toContainEqual({ section: 'users[0]', key: 'password', value: `"${REDACTED}"` });
    expect(rows).toContainEqual({
      section: 'users[0]',
      key: 'pool_size',
      value: null,
      fallback: 'general.default_pool_size',
    });
    expect(rows).toContainEqual({ section: 'sharded_tables[0]', key: 'column', value: '"id"' });
    const text = JSON.stringify(rows);
    for (const secret of ['admin-secret', 'db-secret', 'alice-secret', 'server-secret']) {
      expect(text).not.toContain(secret);
    }
  });
});

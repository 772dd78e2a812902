// Every kind of configuration mistake refuses startup with a ConfigError naming file, key and expectation.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/config-error.js';
import { MINIMAL_PGDOG, MINIMAL_USERS, parseError, withGeneral } from './helpers.js';

/** The error names file and key, and its one-line message says both plus what was expected. */
function expectNames(error: ConfigError, file: string, key: string | null): void {
  expect(error.file).toBe(file);
  expect(error.key).toBe(key);
  expect(error.message.startsWith(key === null ? `${file}: ` : `${file}: ${key}: `)).toBe(true);
  expect(error.message).not.toContain('\n');
  if (error.expected !== null) expect(error.message.endsWith(`, expected ${error.expected}`)).toBe(true);
}

describe('parseConfig refuses', () => {
  it('a TOML syntax error, with line and column', () => {
    const error = parseError('[general]\nport = = 6432\n');
    expectNames(error, 'pgdog.toml', null);
    expect(error.line).toBe(2);
    expect(error.column).toBeGreaterThan(0);
    expect(error.message).toMatch(/^pgdog\.toml: line 2, column \d+: invalid TOML/);
  });

  it('a syntax error in users.toml without echoing its text (it may hold passwords)', () => {
    const error = parseError(MINIMAL_PGDOG, '[[users]]\nname = "a"\npassword = "s3cret\n');
    expectNames(error, 'users.toml', null);
    expect(error.message).not.toContain('s3cret');
  });

  it('a string where an integer is expected', () => {
    const error = parseError(withGeneral('port = "6432"'));
    expectNames(error, 'pgdog.toml', 'general.port');
    expect(error.message).toContain('got string "6432"');
    expect(error.expected).toContain('integer');
  });

  it('a non-integer number', () => {
    const error = parseError(withGeneral('checkout_timeout = 5.5'));
    expectNames(error, 'pgdog.toml', 'general.checkout_timeout');
    expect(error.message).toContain('float');
  });

  it('a float with no fraction (5000.0), as PgDog does', () => {
    expectNames(parseError(withGeneral('query_timeout = 5000.0')), 'pgdog.toml', 'general.query_timeout');
  });

  it('a negative timeout', () => {
    const error = parseError(withGeneral('idle_timeout = -1'));
    expectNames(error, 'pgdog.toml', 'general.idle_timeout');
    expect(error.expected).toContain('milliseconds');
  });

  it('a timeout too large for a Node timer', () => {
    expectNames(
      parseError(withGeneral('client_idle_timeout = 3_000_000_000')),
      'pgdog.toml',
      'general.client_idle_timeout',
    );
  });

  it('a zero checkout timeout', () => {
    expectNames(parseError(withGeneral('checkout_timeout = 0')), 'pgdog.toml', 'general.checkout_timeout');
  });

  it('a listen port outside 0..65535 (0 = any free port)', () => {
    expectNames(parseError(withGeneral('port = 70000')), 'pgdog.toml', 'general.port');
    expectNames(parseError(withGeneral('port = -1')), 'pgdog.toml', 'general.port');
  });

  it('a database port outside 1..65535', () => {
    const error = parseError(
      '[admin]\npassword = "x"\n[[databases]]\nname = "prod"\nhost = "h"\nport = 99999\n',
    );
    expectNames(error, 'pgdog.toml', 'databases[0].port');
  });

  it('a pool size of 0', () => {
    expectNames(parseError(withGeneral('default_pool_size = 0')), 'pgdog.toml', 'general.default_pool_size');
  });

  it('a user pool size of 0', () => {
    const error = parseError(MINIMAL_PGDOG, `${MINIMAL_USERS}pool_size = 0\n`);
    expectNames(error, 'users.toml', 'users[0].pool_size');
  });

  it('a wrong boolean', () => {
    expectNames(
      parseError(withGeneral('two_phase_commit = "yes"')),
      'pgdog.toml',
      'general.two_phase_commit',
    );
  });

  it('an enum value that is not allowed', () => {
    const error = parseError(withGeneral('pooler_mode = "statement"'));
    expectNames(error, 'pgdog.toml', 'general.pooler_mode');
    expect(error.expected).toBe('one of "transaction", "session"');
  });

  it.each([
    ['auth_type = "plain"', 'general.auth_type'],
    ['log_level = "verbose"', 'general.log_level'],
    ['log_format = "xml"', 'general.log_format'],
  ])('enum %s', (line, key) => {
    expectNames(parseError(withGeneral(line)), 'pgdog.toml', key);
  });

  it('a database role that is not allowed', () => {
    const error = parseError(
      '[admin]\npassword = "x"\n[[databases]]\nname = "prod"\nhost = "h"\nrole = "leader"\n',
    );
    expectNames(error, 'pgdog.toml', 'databases[0].role');
  });

  it('a missing required database key', () => {
    const error = parseError('[admin]\npassword = "x"\n[[databases]]\nname = "prod"\n');
    expectNames(error, 'pgdog.toml', 'databases[0].host');
    expect(error.message).toContain('missing');
  });

  it('a database host that is a relative path (a socket directory must be absolute, as in libpq)', () => {
    const error = parseError('[[databases]]\nname = "prod"\nhost = "run/postgresql"\n');
    expectNames(error, 'pgdog.toml', 'databases[0].host');
    expect(error.problem).toBe('"run/postgresql" is a relative path');
    expect(error.expected).toContain('absolute path of the directory holding its Unix-domain socket');
  });

  it('a database host naming an abstract-namespace socket', () => {
    const error = parseError('[[databases]]\nname = "prod"\nhost = "@pg"\n');
    expectNames(error, 'pgdog.toml', 'databases[0].host');
    expect(error.problem).toContain('abstract-namespace socket');
  });

  it('a socket directory whose socket path is too long for a Unix-domain socket', () => {
    const dir = `/${'d'.repeat(96)}`; // + "/.s.PGSQL.5432" = 111 bytes > 107
    const error = parseError(`[[databases]]\nname = "prod"\nhost = "${dir}"\n`);
    expectNames(error, 'pgdog.toml', 'databases[0].host');
    expect(error.problem).toBe(`socket path "${dir}/.s.PGSQL.5432" is longer than 107 bytes`);
  });

  it('an empty database name', () => {
    expectNames(parseError('[[databases]]\nname = ""\nhost = "h"\n'), 'pgdog.toml', 'databases[0].name');
  });

  it('a missing required user key', () => {
    const error = parseError(MINIMAL_PGDOG, '[[users]]\nname = "alice"\npassword = "x"\n');
    expectNames(error, 'users.toml', 'users[0].database');
  });

  it('no [[databases]] at all', () => {
    const error = parseError('[general]\nport = 6432\n');
    expectNames(error, 'pgdog.toml', 'databases');
    expect(error.expected).toContain('[[databases]]');
  });

  it('[databases] written as a table instead of an array of tables', () => {
    const error = parseError('[databases]\nname = "prod"\nhost = "h"\n');
    expectNames(error, 'pgdog.toml', 'databases');
    expect(error.expected).toContain('[[databases]]');
  });

  it('[general] that is not a table', () => {
    expectNames(parseError(`general = 5\n${MINIMAL_PGDOG}`), 'pgdog.toml', 'general');
  });

  it('a gap in the shard numbers', () => {
    const pgdog = `[admin]\npassword = "x"
[[databases]]\nname = "prod"\nhost = "a"\nshard = 0
[[databases]]\nname = "prod"\nhost = "b"\nshard = 2\n`;
    const error = parseError(pgdog);
    expectNames(error, 'pgdog.toml', 'databases[1].shard');
    expect(error.message).toContain('no shard 1');
  });

  it('shards that do not start at 0', () => {
    const error = parseError('[[databases]]\nname = "prod"\nhost = "a"\nshard = 1\n');
    expectNames(error, 'pgdog.toml', 'databases[0].shard');
    expect(error.message).toContain('no shard 0');
  });

  it('two primaries for one shard', () => {
    const pgdog = `[admin]\npassword = "x"
[[databases]]\nname = "prod"\nhost = "a"
[[databases]]\nname = "prod"\nhost = "b"\nrole = "primary"\n`;
    const error = parseError(pgdog);
    expectNames(error, 'pgdog.toml', 'databases[1].role');
    expect(error.message).toContain('databases[0]');
  });

  it('a shard without a primary', () => {
    const pgdog = `[[databases]]\nname = "prod"\nhost = "a"
[[databases]]\nname = "prod"\nhost = "b"\nshard = 1\nrole = "replica"\n`;
    const error = parseError(pgdog);
    expectNames(error, 'pgdog.toml', 'databases[1].role');
    expect(error.message).toContain('shard 1 has no primary');
  });

  it('a user whose database is not defined', () => {
    const error = parseError(
      MINIMAL_PGDOG,
      '[[users]]\nname = "alice"\ndatabase = "stage"\npassword = "x"\n',
    );
    expectNames(error, 'users.toml', 'users[0].database');
    expect(error.message).toContain('"stage"');
    expect(error.expected).toContain('"prod"');
  });

  it('tls_certificate without tls_private_key', () => {
    const error = parseError(withGeneral('tls_certificate = "cert.pem"'));
    expectNames(error, 'pgdog.toml', 'general.tls_private_key');
  });

  it('tls_private_key without tls_certificate', () => {
    expectNames(
      parseError(withGeneral('tls_private_key = "key.pem"')),
      'pgdog.toml',
      'general.tls_certificate',
    );
  });

  it.each(['scram', 'md5'])('a user without a password under auth_type = "%s"', (authType) => {
    const error = parseError(
      withGeneral(`auth_type = "${authType}"`),
      '[[users]]\nname = "alice"\ndatabase = "prod"\n',
    );
    expectNames(error, 'users.toml', 'users[0].password');
    expect(error.expected).toContain(authType);
  });

  it.each(['enabled', 'enabled_allow_change'])(
    'passthrough_auth = "%s" without TLS (it takes passwords in clear text only over TLS)',
    (mode) => {
      const error = parseError(withGeneral(`passthrough_auth = "${mode}"`));
      expectNames(error, 'pgdog.toml', 'general.passthrough_auth');
      expect(error.expected).toContain('tls_certificate');
      expect(error.expected).toContain(mode.replace('enabled', 'enabled_plain'));
    },
  );

  it('a passthrough_auth mode PgDog does not have', () => {
    expectNames(parseError(withGeneral('passthrough_auth = "on"')), 'pgdog.toml', 'general.passthrough_auth');
  });

  it('min_pool_size larger than default_pool_size', () => {
    const error = parseError(withGeneral('default_pool_size = 2\nmin_pool_size = 3'));
    expectNames(error, 'pgdog.toml', 'general.min_pool_size');
  });

  it('a duplicate user (name, database)', () => {
    const error = parseError(MINIMAL_PGDOG, `${MINIMAL_USERS}\n${MINIMAL_USERS}`);
    expectNames(error, 'users.toml', 'users[1]');
    expect(error.message).toContain('users[0]');
  });

  it('default_pool_size and its PgDog alias max_pool_size together', () => {
    const error = parseError(withGeneral('default_pool_size = 5\nmax_pool_size = 6'));
    expectNames(error, 'pgdog.toml', 'general.max_pool_size');
  });

  it('an admin database name that a [[databases]] entry also uses', () => {
    const error = parseError('[admin]\npassword = "x"\n[[databases]]\nname = "admin"\nhost = "h"\n', '');
    expectNames(error, 'pgdog.toml', 'admin.name');
  });

  it('max_message_size below 4096 bytes', () => {
    expectNames(parseError(withGeneral('max_message_size = 100')), 'pgdog.toml', 'general.max_message_size');
  });

  it('an openmetrics_namespace that would make invalid metric names (PgDog allows "." for Datadog)', () => {
    const error = parseError(withGeneral('openmetrics_namespace = "pgdog."'));
    expectNames(error, 'pgdog.toml', 'general.openmetrics_namespace');
    expect(error.message).toContain('letters, digits and _');
  });

  it('an openmetrics_port or shutdown_timeout out of range', () => {
    expectNames(
      parseError(withGeneral('openmetrics_port = 70000')),
      'pgdog.toml',
      'general.openmetrics_port',
    );
    expectNames(parseError(withGeneral('shutdown_timeout = -1')), 'pgdog.toml', 'general.shutdown_timeout');
  });

  it('a wrongly typed password without printing its value', () => {
    const error = parseError(
      MINIMAL_PGDOG,
      '[[users]]\nname = "alice"\ndatabase = "prod"\npassword = 987654321\n',
    );
    expectNames(error, 'users.toml', 'users[0].password');
    expect(error.message).not.toContain('987654321');
  });
});

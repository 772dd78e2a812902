// Warnings never stop startup: unknown keys, PgDog keys not supported yet, a missing admin password.
import { describe, expect, it } from 'vitest';
import { formatConfigWarning } from '../../../src/config/config-error.js';
import { MINIMAL_PGDOG, MINIMAL_USERS, parse, withGeneral } from './helpers.js';

describe('parseConfig warnings', () => {
  it('names file and full key path of an unknown key, suggesting a close one', () => {
    const { config, warnings } = parse(withGeneral('prot = 7000'));
    expect(config.general.port).toBe(6432);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ file: 'pgdog.toml', key: 'general.prot' });
    expect(formatConfigWarning(warnings[0])).toMatch(/^pgdog\.toml: general\.prot: unknown key/);
    expect(warnings[0].message).toContain('"port"');
  });

  it('reports unknown keys in every section and file', () => {
    const pgdog = `colour = "blue"\n${MINIMAL_PGDOG}hots = "x"\n`;
    const users = `${MINIMAL_USERS}nickname = "al"\n[extra]\na = 1\n`;
    const keys = parse(pgdog, users).warnings.map((w) => `${w.file}: ${w.key}: ${w.message}`);
    expect(keys).toEqual([
      'pgdog.toml: databases[0].hots: unknown key (did you mean "host"?)',
      'pgdog.toml: colour: unknown key',
      'users.toml: users[0].nickname: unknown key',
      'users.toml: extra: unknown key',
    ]);
  });

  it('accepts PgDog settings that are not supported yet, with a warning', () => {
    const pgdog = withGeneral(
      'workers = 4\nprepared_statements = "full"\nrollback_timeout = 1000\nshutdown_termination_timeout = 9090',
    );
    const { warnings } = parse(
      `${pgdog}read_only = true\n[tcp]\nretries = 3\n[[mirroring]]\nsource_db = "a"\n`,
    );
    expect(warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: general.workers: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: general.prepared_statements: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: general.rollback_timeout: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: general.shutdown_termination_timeout: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: databases[0].read_only: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: tcp: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: mirroring: recognized PgDog setting, not supported yet; ignored',
    ]);
  });

  it('accepts unsupported PgDog user keys with a warning', () => {
    const { warnings } = parse(MINIMAL_PGDOG, `${MINIMAL_USERS}statement_timeout = 1000\n`);
    expect(warnings.map(formatConfigWarning)).toEqual([
      'users.toml: users[0].statement_timeout: recognized PgDog setting, not supported yet; ignored',
    ]);
  });

  it('generates a random admin password and says the admin console needs one', () => {
    const first = parse('[[databases]]\nname = "prod"\nhost = "h"\n');
    const second = parse('[[databases]]\nname = "prod"\nhost = "h"\n');
    expect(first.config.admin.password.length).toBeGreaterThanOrEqual(24);
    expect(first.config.admin.password).not.toBe(second.config.admin.password);
    expect(first.warnings).toHaveLength(1);
    expect(first.warnings[0]).toMatchObject({ file: 'pgdog.toml', key: 'admin.password' });
    expect(first.warnings[0].message).toContain('admin console needs a password set');
  });

  it('warns when users.toml has no users', () => {
    const { warnings } = parse(MINIMAL_PGDOG, '');
    expect(warnings.map(formatConfigWarning)).toEqual([
      'users.toml: users: no [[users]] entries: only the admin console accepts logins',
    ]);
  });

  it('warns about two identical entries', () => {
    const replica = '[[databases]]\nname = "prod"\nhost = "10.0.0.2"\nrole = "replica"\n';
    expect(parse(`${MINIMAL_PGDOG}${replica}${replica}`).warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: databases[2]: duplicate of databases[1]',
    ]);
  });
});

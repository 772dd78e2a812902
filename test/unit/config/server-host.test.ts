// A [[databases]] host read as libpq reads it: an absolute path is a socket directory, anything else TCP.
import { describe, expect, it } from 'vitest';
import { hostProblem, serverEndpoint } from '../../../src/config/server-host.js';
import { parse } from './helpers.js';

describe('server host', () => {
  it('an absolute path is the directory of the socket .s.PGSQL.<port>', () => {
    expect(serverEndpoint('/var/run/postgresql', 5433)).toEqual({
      kind: 'unix',
      path: '/var/run/postgresql/.s.PGSQL.5433',
    });
    expect(serverEndpoint('/tmp/', 5432)).toEqual({ kind: 'unix', path: '/tmp/.s.PGSQL.5432' });
  });

  it('a host name or address is TCP', () => {
    expect(serverEndpoint('db.internal', 5432)).toEqual({ kind: 'tcp', host: 'db.internal', port: 5432 });
    expect(serverEndpoint('::1', 6000)).toEqual({ kind: 'tcp', host: '::1', port: 6000 });
  });

  it('accepts a socket directory up to the 107-byte socket path limit', () => {
    const dir = `/${'d'.repeat(92)}`; // + "/.s.PGSQL.5432" = 107 bytes
    expect(hostProblem(dir, 5432)).toBeNull();
    expect(hostProblem(`${dir}d`, 5432)).toContain('longer than 107 bytes');
  });

  it('a config with a socket directory host loads, host and port as written', () => {
    const { config } = parse(
      '[admin]\npassword = "x"\n[[databases]]\nname = "prod"\nhost = "/var/run/postgresql"\nport = 5433\n',
    );
    expect(config.databases[0]).toMatchObject({ host: '/var/run/postgresql', port: 5433 });
  });
});

// What a Docker PostgreSQL container is started with (built without loading testcontainers), and the settings every
// throwaway server gets.
import { describe, expect, it } from 'vitest';
import { DEFAULT_DOCKER_PG_IMAGE, dockerPgImage, dockerPgSpec } from '../../../src/testing/docker-pg.js';
import { BASE_CONF, clusterConf } from '../../../src/testing/pg-server.js';

describe('clusterConf', () => {
  it('starts from BASE_CONF (prepared transactions on) and lets the caller override', () => {
    const conf = clusterConf('scram-sha-256', { max_connections: '50', log_min_messages: 'debug1' });
    expect(conf.max_prepared_transactions).toBe(BASE_CONF.max_prepared_transactions);
    expect(Number(conf.max_prepared_transactions)).toBeGreaterThan(0);
    expect(conf.max_connections).toBe('50');
    expect(conf.log_min_messages).toBe('debug1');
    expect(conf.password_encryption).toBeUndefined();
  });

  it('stores md5 passwords on md5 servers unless told otherwise', () => {
    expect(clusterConf('md5').password_encryption).toBe('md5');
    expect(clusterConf('md5', { password_encryption: 'scram-sha-256' }).password_encryption).toBe(
      'scram-sha-256',
    );
  });

  it('refuses a setting name PostgreSQL would not accept', () => {
    expect(() => clusterConf('trust', { 'fsync = on\nlisten_addresses': '*' })).toThrow(
      /invalid postgresql.conf setting name/,
    );
  });
});

describe('dockerPgSpec', () => {
  const conf = clusterConf('md5', { 'shardgate.custom': "it's" });
  const spec = dockerPgSpec({ authMethod: 'md5', superuserPassword: 'pw-123', conf, image: 'postgres:17' });

  it('passes every setting to postgres as -c key=value, unquoted (no shell in between)', () => {
    expect(spec.command[0]).toBe('postgres');
    const pairs: string[] = [];
    for (let i = 1; i < spec.command.length; i += 2) {
      expect(spec.command[i]).toBe('-c');
      pairs.push(spec.command[i + 1]);
    }
    expect(pairs).toEqual(Object.entries(conf).map(([k, v]) => `${k}=${v}`));
    expect(pairs).toContain("shardgate.custom=it's");
    expect(pairs).toContain('password_encryption=md5');
    expect(pairs).toContain(`max_prepared_transactions=${BASE_CONF.max_prepared_transactions}`);
  });

  it('makes the superuser and the TCP auth method the cluster asked for', () => {
    expect(spec.image).toBe('postgres:17');
    expect(spec.environment).toEqual({
      POSTGRES_USER: 'postgres',
      POSTGRES_PASSWORD: 'pw-123',
      POSTGRES_HOST_AUTH_METHOD: 'md5',
      POSTGRES_INITDB_ARGS: '--auth-host=md5 --auth-local=trust -E UTF8 --locale=C',
    });
    expect(spec.exposedPort).toBe(5432);
  });

  it('is healthy only when the final server answers on TCP, checked for as long as the startup timeout', () => {
    expect(spec.healthCheck.test).toEqual([
      'CMD',
      'pg_isready',
      '-q',
      '-h',
      '127.0.0.1',
      '-p',
      '5432',
      '-U',
      'postgres',
    ]);
    expect(spec.healthCheck.interval * spec.healthCheck.retries).toBeGreaterThanOrEqual(
      spec.startupTimeoutMs,
    );
  });
});

describe('dockerPgImage', () => {
  it('takes the explicit image, else $SHARDGATE_PG_DOCKER_IMAGE, else the default', () => {
    expect(dockerPgImage('postgres:15', { SHARDGATE_PG_DOCKER_IMAGE: 'postgres:17' })).toBe('postgres:15');
    expect(dockerPgImage(undefined, { SHARDGATE_PG_DOCKER_IMAGE: 'postgres:17' })).toBe('postgres:17');
    expect(dockerPgImage(undefined, {})).toBe(DEFAULT_DOCKER_PG_IMAGE);
  });
});

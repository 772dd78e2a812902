// passthrough_auth (PgDog's modes): a user with no password in users.toml — or not listed at all — logs in with the
// password its PostgreSQL servers accept. The first login has every shard's server check it; it is then remembered
// and used by the user's pools. "enabled_plain" keeps the first password, "…_allow_change" accepts a changed one once
// the servers do, and "enabled" takes passwords only over TLS.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

let cluster: PgCluster;
let superusers: pg.Client[];
const proxies: TestProxy[] = [];

/** users.toml entries without a password. */
const PASSWORDLESS_USERS = ['keeper', 'changer', 'split']
  .map((name) => `[[users]]\nname = "${name}"\ndatabase = "${APP_DB}"\n`)
  .join('\n');

async function proxyWith(mode: string, opts: { shards?: number; general?: string } = {}): Promise<TestProxy> {
  const proxy = await startTestProxy(cluster, {
    shards: opts.shards ?? 1,
    general: `passthrough_auth = "${mode}"\n${opts.general ?? ''}`,
    moreUsers: PASSWORDLESS_USERS,
  });
  proxies.push(proxy);
  return proxy;
}

/** Connect as `user` and read back who the server says we are; the error when the login is refused. */
async function whoAmI(
  proxy: TestProxy,
  user: string,
  password: string,
  ssl?: pg.ClientConfig['ssl'],
): Promise<string | { code: string; message: string }> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    database: APP_DB,
    user,
    password,
    ssl,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  try {
    return (await client.query<{ u: string }>('select current_user as u')).rows[0].u;
  } finally {
    await client.end();
  }
}

async function onAll(sql: string): Promise<void> {
  for (const su of superusers) await su.query(sql);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  superusers = await Promise.all(
    cluster.servers.map(async (s) => {
      const c = new pg.Client({
        host: s.host,
        port: s.port,
        user: s.superuser,
        password: s.superuserPassword,
        database: APP_DB,
      });
      await c.connect();
      return c;
    }),
  );
  await onAll("create role keeper login password 'keeper-1'");
  await onAll("create role changer login password 'changer-1'");
  await onAll("create role unlisted login password 'unlisted-1'");
  await superusers[0].query("create role split login password 'split-0'");
  await superusers[1].query("create role split login password 'split-1'");
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const c of superusers ?? []) await c.end().catch(() => undefined);
  await cluster?.stop();
});

describe('passthrough_auth = "enabled_plain"', () => {
  it('lets the server check the first password, then remembers it and keeps it', async () => {
    const proxy = await proxyWith('enabled_plain');
    expect(await whoAmI(proxy, 'keeper', 'wrong')).toEqual({
      code: '28P01',
      message: 'password authentication failed for user "keeper"',
    });
    expect(await whoAmI(proxy, 'keeper', 'keeper-1')).toBe('keeper'); // the pool connects with it too
    expect(await whoAmI(proxy, 'keeper', 'keeper-1')).toBe('keeper');
    expect(await whoAmI(proxy, 'keeper', 'wrong')).toMatchObject({ code: '28P01' });
    // The password changes on the server: this mode keeps the remembered one (PgDog's), the new one is refused.
    await onAll("alter role keeper password 'keeper-2'");
    expect(await whoAmI(proxy, 'keeper', 'keeper-2')).toMatchObject({ code: '28P01' });
  });

  it('takes users that users.toml does not list, as PgDog does', async () => {
    const proxy = await proxyWith('enabled_plain');
    expect(await whoAmI(proxy, 'unlisted', 'unlisted-1')).toBe('unlisted');
    expect(await whoAmI(proxy, 'nobody', 'x')).toMatchObject({ code: '28P01' });
  });

  it('needs every shard to accept the password', async () => {
    const proxy = await proxyWith('enabled_plain', { shards: 2 });
    expect(await whoAmI(proxy, 'split', 'split-0')).toMatchObject({ code: '28P01' });
    expect(await whoAmI(proxy, 'keeper', 'keeper-2')).toBe('keeper');
  });

  it('leaves users with a password in users.toml to the configured method', async () => {
    const proxy = await proxyWith('enabled_plain');
    const client = new pg.Client({ connectionString: proxy.url });
    await client.connect();
    expect((await client.query('select current_user as u')).rows[0].u).toBe('app');
    await client.end();
  });
});

describe('passthrough_auth = "enabled_plain_allow_change"', () => {
  it('accepts a changed password once the servers do, and its pools use it', async () => {
    const proxy = await proxyWith('enabled_plain_allow_change');
    const backend = async (password: string): Promise<number> => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: proxy.port,
        database: APP_DB,
        user: 'changer',
        password,
      });
      await client.connect();
      try {
        return (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      } finally {
        await client.end();
      }
    };
    const before = await backend('changer-1');
    await onAll("alter role changer password 'changer-2'");
    expect(await whoAmI(proxy, 'changer', 'not-it')).toMatchObject({ code: '28P01' });
    // The new password: checked by the servers, remembered; the pool's connections opened with the old one retire,
    // and the one serving the query logged in with the new password.
    const after = await backend('changer-2');
    expect(after).not.toBe(before);
    expect(await whoAmI(proxy, 'changer', 'changer-1')).toMatchObject({ code: '28P01' });
    expect(await whoAmI(proxy, 'changer', 'changer-2')).toBe('changer');
  });
});

describe.skipIf(!hasOpenssl)('passthrough_auth = "enabled" (TLS only)', () => {
  let dir: string;
  let tlsGeneral: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-passthrough-'));
    const certPath = path.join(dir, 'cert.pem');
    const keyPath = path.join(dir, 'key.pem');
    const gen = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1'].concat([
        '-keyout',
        keyPath,
        '-out',
        certPath,
      ]),
      { encoding: 'utf8' },
    );
    if (gen.status !== 0) throw new Error(`openssl failed: ${gen.stderr}`);
    tlsGeneral = `tls_certificate = ${JSON.stringify(certPath)}\ntls_private_key = ${JSON.stringify(keyPath)}`;
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the password over a plain connection and takes it over TLS', async () => {
    const proxy = await proxyWith('enabled', { general: tlsGeneral });
    expect(await whoAmI(proxy, 'unlisted', 'unlisted-1')).toEqual({
      code: '28000',
      message: 'passthrough authentication needs a TLS connection: the password is sent in clear text',
    });
    expect(await whoAmI(proxy, 'unlisted', 'unlisted-1', { rejectUnauthorized: false })).toBe('unlisted');
  });
});

// Client authentication at the proxy (scram, md5, trust) and server authentication behind it (scram, md5, trust),
// with real PostgreSQL servers: right and wrong passwords, unknown database/user, and clients unaffected by failures.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient, firstError } from '../helpers/raw-client.js';
import { query, startupMessage } from '../../src/protocol/messages.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

/** Proxy users with unusual passwords, mapped to the app user on the server. */
const ODD_PASSWORDS = ['pässwörd ✓', 'a,b=c"d\\e\'f', ' leading and trailing '];
const ODD_USERS = ODD_PASSWORDS.map(
  (password, i) =>
    `[[users]]\nname = "odd${i}"\ndatabase = "${APP_DB}"\npassword = ${JSON.stringify(password)}\n` +
    `server_user = "${APP_USER}"\nserver_password = "${APP_PASSWORD}"\n`,
).join('\n');

interface Login {
  user?: string;
  password?: string;
  database?: string;
}

function client(port: number, login: Login = {}): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: login.user ?? APP_USER,
    password: login.password ?? APP_PASSWORD,
    database: login.database ?? APP_DB,
    connectionTimeoutMillis: 5_000,
  });
  c.on('error', () => undefined);
  return c;
}

/** Logs in, runs a query that reaches the server, and disconnects. */
async function expectWorks(port: number, login: Login = {}): Promise<void> {
  const c = client(port, login);
  try {
    await c.connect();
    const res = await c.query<{ user: string; db: string }>(
      'select current_user as user, current_database() as db',
    );
    expect(res.rows[0]).toEqual({ user: APP_USER, db: APP_DB });
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function expectLoginError(port: number, login: Login, code: string): Promise<Error> {
  const c = client(port, login);
  const t0 = Date.now();
  const err = await c.connect().then(
    () => null,
    (e: Error) => e,
  );
  await c.end().catch(() => undefined);
  expect(err, 'login should fail').not.toBeNull();
  expect((err as Error & { code?: string }).code).toBe(code);
  expect(Date.now() - t0).toBeLessThan(3_000);
  return err as Error;
}

describe('client authentication at the proxy', () => {
  let cluster: PgCluster;
  const proxies: Record<'scram' | 'md5' | 'trust', TestProxy> = {} as Record<
    'scram' | 'md5' | 'trust',
    TestProxy
  >;

  beforeAll(async () => {
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    proxies.scram = await startTestProxy(cluster, { moreUsers: ODD_USERS });
    proxies.md5 = await startTestProxy(cluster, { general: 'auth_type = "md5"', moreUsers: ODD_USERS });
    proxies.trust = await startTestProxy(cluster, { general: 'auth_type = "trust"' });
  });

  afterAll(async () => {
    for (const p of Object.values(proxies)) await p?.close();
    await cluster?.stop();
  });

  for (const method of ['scram', 'md5'] as const) {
    describe(`auth_type ${method}`, () => {
      it('logs in with the right password', async () => {
        await expectWorks(proxies[method].port);
      });

      it('asks for the configured method', async () => {
        const raw = await RawClient.connect(proxies[method].port);
        try {
          raw.write(startupMessage({ user: APP_USER, database: APP_DB }));
          const m = await raw.readMessage();
          expect(m.type).toBe('R');
          expect(m.body.readInt32BE(0)).toBe(method === 'md5' ? 5 : 10);
        } finally {
          raw.close();
        }
      });

      it('accepts passwords with non-ASCII characters, quotes, commas and spaces', async () => {
        for (const [i, password] of ODD_PASSWORDS.entries()) {
          await expectWorks(proxies[method].port, { user: `odd${i}`, password });
          await expectLoginError(
            proxies[method].port,
            { user: `odd${i}`, password: password.trim() + 'x' },
            '28P01',
          );
        }
      });

      it('rejects a wrong password with 28P01, and other clients still work', async () => {
        const err = await expectLoginError(proxies[method].port, { password: 'wrong' }, '28P01');
        expect(err.message).toContain(APP_USER);
        await expectWorks(proxies[method].port);
      });

      it('rejects an unknown database with 3D000, and other clients still work', async () => {
        const err = await expectLoginError(proxies[method].port, { database: 'no_such_db' }, '3D000');
        expect(err.message).toContain('no_such_db');
        await expectWorks(proxies[method].port);
      });

      it('rejects an unknown user with 28000, and other clients still work', async () => {
        await expectLoginError(proxies[method].port, { user: 'nobody' }, '28000');
        await expectWorks(proxies[method].port);
      });
    });
  }

  describe('auth_type trust', () => {
    it('logs in without checking the password', async () => {
      await expectWorks(proxies.trust.port);
      await expectWorks(proxies.trust.port, { password: 'anything at all' });
    });

    it('still rejects unknown databases and users', async () => {
      await expectLoginError(proxies.trust.port, { database: 'no_such_db' }, '3D000');
      await expectLoginError(proxies.trust.port, { user: 'nobody' }, '28000');
      await expectWorks(proxies.trust.port);
    });
  });

  it('rejects a startup packet without a user, and other clients still work', async () => {
    const raw = await RawClient.connect(proxies.scram.port);
    try {
      raw.write(startupMessage({ database: APP_DB }));
      const err = firstError([await raw.readMessage()]);
      expect(err.C).toBe('28000');
      expect(err.S).toBe('FATAL');
      expect(await raw.waitClosed()).toBe(true);
    } finally {
      raw.close();
    }
    await expectWorks(proxies.scram.port);
  });

  it('rejects a message other than a password during authentication with 08P01', async () => {
    const raw = await RawClient.connect(proxies.md5.port);
    try {
      raw.write(startupMessage({ user: APP_USER, database: APP_DB }));
      expect((await raw.readMessage()).type).toBe('R');
      raw.write(query('select 1'));
      const err = firstError([await raw.readMessage()]);
      expect(err.C).toBe('08P01');
      expect(await raw.waitClosed()).toBe(true);
    } finally {
      raw.close();
    }
    await expectWorks(proxies.md5.port);
  });

  it('keeps a logged-in client working through many failed logins', async () => {
    const c = client(proxies.scram.port);
    await c.connect();
    try {
      await c.query('begin');
      await Promise.all([
        expectLoginError(proxies.scram.port, { password: 'wrong1' }, '28P01'),
        expectLoginError(proxies.scram.port, { password: 'wrong2' }, '28P01'),
        expectLoginError(proxies.scram.port, { user: 'nobody' }, '28000'),
        expectLoginError(proxies.scram.port, { database: 'nope' }, '3D000'),
      ]);
      const res = await c.query<{ n: number }>('select 1 as n');
      expect(res.rows[0].n).toBe(1);
      await c.query('commit');
    } finally {
      await c.end();
    }
  });
});

describe('server authentication behind the proxy', () => {
  const clusters: PgCluster[] = [];
  afterAll(async () => {
    for (const c of clusters) await c.stop();
  });

  const methods = isExternal ? (['scram-sha-256'] as const) : (['scram-sha-256', 'md5', 'trust'] as const);
  for (const authMethod of methods) {
    it(`logs in to a ${authMethod} server`, async () => {
      const cluster = await testServers(1, { ...APP_SERVER_OPTIONS, authMethod });
      clusters.push(cluster);
      const proxy = await startTestProxy(cluster);
      try {
        await expectWorks(proxy.port);
        if (authMethod !== 'trust') {
          // With a wrong server password the login fails clearly instead of hanging.
          const bad = await startTestProxy(cluster, { userExtra: 'server_password = "not-the-password"' });
          try {
            const c = client(bad.port);
            const t0 = Date.now();
            const err = (await c.connect().then(
              () => null,
              (e: Error) => e,
            )) as (Error & { code?: string }) | null;
            await c.end().catch(() => undefined);
            expect(err).not.toBeNull();
            expect(err?.message).toMatch(/password authentication failed|28P01/);
            expect(err?.message).toContain('shard 0');
            expect(Date.now() - t0).toBeLessThan(3_000);
          } finally {
            await bad.close();
          }
        }
      } finally {
        await proxy.close();
      }
    });
  }
});

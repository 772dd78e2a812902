// Replication connections through the proxy (issue 12; PgBouncer ≥ 1.23 does the same): `replication=database`
// (postgres.js `subscribe`, logical replication) and `replication=true` (physical: IDENTIFY_SYSTEM) to a database with
// one shard get a server connection of their own, opened with the client's startup parameters — never pooled, closed
// when the client leaves — in session mode whatever the user's pooler_mode. A sharded database refuses them clearly,
// and what the server refuses (a bad value, a role without REPLICATION) fails the login as PostgreSQL fails it.
import pg from 'pg';
import postgres from 'postgres';
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
import { errorFields, RawClient, type RawMessage } from '../helpers/raw-client.js';

let cluster: PgCluster;
let superuser: pg.Client;
let sessionMode: TestProxy;
/** The app user in transaction mode: replication connections are session-bound anyway. */
let transactionMode: TestProxy;
/** Two shards (on the same server): replication is refused. */
let sharded: TestProxy;
let isLogical = false;

async function until(
  what: string,
  isDone: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await isDone())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function walsenders(): Promise<number> {
  const r = await superuser.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where backend_type = 'walsender' and usename = $1",
    [APP_USER],
  );
  return r.rows[0].n;
}

async function login(
  port: number,
  params: Record<string, string>,
  password = APP_PASSWORD,
): Promise<RawMessage[]> {
  const raw = await RawClient.connect(port);
  try {
    return await raw.loginMessages({ database: APP_DB, user: APP_USER, ...params }, password);
  } finally {
    raw.close();
  }
}

function errorOf(messages: RawMessage[]): Record<string, string> {
  const e = messages.find((m) => m.type === 'E');
  if (e === undefined) throw new Error(`no error among ${messages.map((m) => m.type).join('')}`);
  const { S, V, C, M, D, H } = errorFields(e.body);
  return Object.fromEntries(Object.entries({ S, V, C, M, D, H }).filter(([, v]) => v !== undefined));
}

beforeAll(async () => {
  cluster = await testServers(1, { ...APP_SERVER_OPTIONS, extraConf: { wal_level: 'logical' } });
  const s = cluster.servers[0];
  superuser = new pg.Client({
    host: s.host,
    port: s.port,
    user: s.superuser,
    password: s.superuserPassword,
    database: APP_DB,
  });
  await superuser.connect();
  isLogical = (await superuser.query('show wal_level')).rows[0].wal_level === 'logical';
  await superuser.query(`alter role ${APP_USER} replication`);
  await superuser.query("create role norepl login password 'norepl-secret'");
  await superuser.query('create table items (id int primary key, name text)');
  await superuser.query(`grant all on items to ${APP_USER}`);
  await superuser.query('create publication alltables for all tables');
  const norepl = '[[users]]\nname = "norepl"\ndatabase = "app"\npassword = "norepl-secret"\n';
  sessionMode = await startTestProxy(cluster, { general: 'pooler_mode = "session"', moreUsers: norepl });
  transactionMode = await startTestProxy(cluster, { userExtra: 'pool_size = 1' });
  sharded = await startTestProxy({ ...cluster, servers: [s, s] });
});

afterAll(async () => {
  await superuser?.end().catch(() => undefined);
  for (const p of [sessionMode, transactionMode, sharded]) await p?.close();
  await cluster?.stop();
});

describe('replication connections pass through to a database with one shard', () => {
  const modes: [string, () => TestProxy][] = [
    ['session mode', () => sessionMode],
    ['a transaction-mode user', () => transactionMode],
  ];
  for (const [what, proxyOf] of modes) {
    it(`streams logical replication to postgres.js subscribe (${what})`, async (ctx) => {
      if (!isLogical) return ctx.skip(); // an external server without wal_level = logical
      const proxy = proxyOf();
      const sql = postgres(proxy.url, { max: 1, publications: 'alltables' });
      const got: unknown[] = [];
      try {
        const before = await walsenders();
        await sql.subscribe('insert:items', (row) => got.push(row));
        expect(await walsenders()).toBe(before + 1); // a walsender of its own
        const base = proxy === sessionMode ? 1 : 100;
        await sql`insert into items ${sql([
          { id: base, name: 'a' },
          { id: base + 1, name: 'b' },
        ])}`;
        await until('the rows to stream in', () => got.length === 2);
        expect(got).toEqual([
          { id: base, name: 'a' },
          { id: base + 1, name: 'b' },
        ]);
        // The pooled connections are unaffected: ordinary queries go on beside the stream.
        expect((await sql`select count(*)::int as n from items`)[0].n).toBeGreaterThanOrEqual(2);
      } finally {
        await sql.end();
      }
      // Closed with its client, never handed to anyone else.
      await until('the walsender to end', async () => (await walsenders()) === 0);
    });
  }

  it('answers IDENTIFY_SYSTEM on a physical replication connection as the server does', async () => {
    const s = cluster.servers[0];
    const identify = async (port: number): Promise<RawMessage[]> => {
      const raw = await RawClient.connect(port);
      try {
        await raw.login({ user: APP_USER, database: APP_DB, replication: 'true' }, APP_PASSWORD);
        return await raw.query('IDENTIFY_SYSTEM');
      } finally {
        raw.close();
      }
    };
    const expected = await identify(s.port);
    const got = await identify(sessionMode.port);
    expect(got.map((m) => m.type).join('')).toBe(expected.map((m) => m.type).join(''));
    expect(got.map((m) => m.type).join('')).toBe('TDCZ');
    const fields = (m: RawMessage): string[] => {
      const out: string[] = [];
      let p = 2;
      for (let i = 0; i < m.body.readInt16BE(0); i++) {
        const len = m.body.readInt32BE(p);
        out.push(len < 0 ? 'NULL' : m.body.toString('utf8', p + 4, p + 4 + len));
        p += 4 + Math.max(len, 0);
      }
      return out;
    };
    expect(got[0].body.equals(expected[0].body)).toBe(true); // RowDescription
    const [systemId, timeline] = fields(got[1]);
    expect([systemId, timeline]).toEqual(fields(expected[1]).slice(0, 2));
    await until('the walsenders to end', async () => (await walsenders()) === 0);
  });
});

describe('replication connections refused', () => {
  it('on a sharded database, before authentication, saying why', async () => {
    const got = await login(sharded.port, { replication: 'database' });
    expect(got.map((m) => m.type).join('')).toBe('E');
    expect(errorOf(got)).toMatchObject({
      S: 'FATAL',
      C: '0A000',
      M: 'replication connections to database "app" are not supported: it is sharded over 2 shards, each with its own WAL',
      H: "Connect to the shard's PostgreSQL server directly for replication.",
    });
  });

  it.each([
    ['an unreadable replication value', { replication: 'maybe' }, APP_USER, APP_PASSWORD],
    ['a role without REPLICATION', { replication: 'database' }, 'norepl', 'norepl-secret'],
    ['a bad startup setting', { replication: 'true', no_such_setting: '1' }, APP_USER, APP_PASSWORD],
  ])('as PostgreSQL refuses it: %s', async (_what, params, user, password) => {
    const expected = errorOf(await login(cluster.servers[0].port, { ...params, user }, password));
    expect(expected.S).toBe('FATAL');
    expect(errorOf(await login(sessionMode.port, { ...params, user }, password))).toEqual(expected);
  });
});

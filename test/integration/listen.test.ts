// LISTEN through the proxy with postgres.js (its "listen reconnects" case): in session mode a listener whose server
// backend is terminated gets PostgreSQL's own FATAL, reconnects, listens again and receives what is notified next —
// on one shard and on a sharded database. In transaction mode LISTEN cannot work (the server connection goes back to
// the pool, and its notifications to whichever client gets it next): it is refused with 0A000, and nothing leaks.
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
import { errorFields, RawClient } from '../helpers/raw-client.js';
import { directShardClients, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let direct: pg.Client[];
let sessionMode: TestProxy;
let shardedSession: TestProxy;
let transactionMode: TestProxy;
let shardedTransaction: TestProxy;

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

/** Server backends of `application_name` on `shard` (found on the server itself). */
async function backendsOf(shard: number, applicationName: string): Promise<number[]> {
  const r = await direct[shard].query<{ pid: number }>(
    'select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()',
    [applicationName],
  );
  return r.rows.map((row) => row.pid);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  sessionMode = await startTestProxy(cluster, { shards: 1, general: 'pooler_mode = "session"' });
  shardedSession = await startTestProxy(cluster, {
    extraPgdog: USERS_SHARDING_TOML,
    general: 'pooler_mode = "session"',
  });
  transactionMode = await startTestProxy(cluster, { shards: 1, userExtra: 'pool_size = 1' });
  shardedTransaction = await startTestProxy(cluster, {
    extraPgdog: USERS_SHARDING_TOML,
    userExtra: 'pool_size = 1',
  });
});

afterAll(async () => {
  for (const c of direct ?? []) await c.end().catch(() => undefined);
  for (const p of [sessionMode, shardedSession, transactionMode, shardedTransaction]) await p?.close();
  await cluster?.stop();
});

describe('LISTEN in session mode: a terminated listener reconnects and listens again', () => {
  it.each([
    ['one shard', () => sessionMode, 1],
    ['a sharded database', () => shardedSession, 2],
  ])('on %s (postgres.js)', async (_what, proxyOf, shardCount) => {
    const proxy = proxyOf();
    const applicationName = `sg-listener-${shardCount}`;
    const listener = postgres(proxy.url, { max: 1, connection: { application_name: applicationName } });
    const notifier = postgres(proxy.url, { max: 1 });
    const got: string[] = [];
    let listens = 0;
    try {
      await listener.listen(
        'jobs',
        (payload) => got.push(payload),
        () => listens++,
      );
      // NOTIFY as a statement: pg_notify($1, $2) fails on a sharded database before any of this (own issue).
      await notifier.unsafe("notify jobs, 'a'");
      await until('the first notification', () => got.includes('a'));

      // The listener's server backends (one per shard it listens on), terminated as PostgreSQL's admin would.
      const backends = await Promise.all(
        [0, 1].slice(0, shardCount).map((s) => backendsOf(s, applicationName)),
      );
      expect(backends.map((pids) => pids.length)).toEqual(new Array(shardCount).fill(1));
      const [pid] = backends[shardCount - 1];
      const killed = await direct[shardCount - 1].query('select pg_terminate_backend($1) as ok', [pid]);
      expect(killed.rows[0].ok).toBe(true);

      await until('postgres.js to listen again', () => listens >= 2);
      await until('a new listening backend', async () => {
        const now = await backendsOf(shardCount - 1, applicationName);
        return now.length === 1 && now[0] !== pid;
      });
      await notifier.unsafe("notify jobs, 'b'");
      await until('the notification after reconnecting', () => got.includes('b'));
      expect(got).toEqual(['a', 'b']); // each delivered once
    } finally {
      await listener.end();
      await notifier.end();
    }
  });

  it("as postgres.js's own suite does it: pg_terminate_backend(state.pid) through the proxy", async () => {
    // Session mode on one shard: the BackendKeyData pid postgres.js keeps is the server backend's, as from PostgreSQL.
    const sql = postgres(sessionMode.url);
    const got: string[] = [];
    let connects = 0;
    try {
      const { state } = await sql.listen(
        'test',
        (x) => got.push(x),
        () => connects++,
      );
      await sql.notify('test', 'a');
      await until('the first notification', () => got.includes('a'));
      const [killed] = await sql`select pg_terminate_backend(${state.pid}) as ok`;
      expect(killed.ok).toBe(true);
      await until('postgres.js to listen again', () => connects === 2);
      await sql.notify('test', 'b');
      await until('the notification after reconnecting', () => got.includes('b'));
    } finally {
      await sql.end();
    }
  });

  it('gives a session-mode client its server backend pid in BackendKeyData (transaction mode: a key of its own)', async () => {
    const pidsOf = async (port: number): Promise<[number, number]> => {
      const raw = await RawClient.connect(port);
      try {
        const login = await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
        const key = login.find((m) => m.type === 'K');
        if (key === undefined) throw new Error('no BackendKeyData');
        const row = (await raw.query('select pg_backend_pid()')).find((m) => m.type === 'D');
        if (row === undefined) throw new Error('no row');
        return [key.body.readInt32BE(0), Number(row.body.toString('utf8', 6))];
      } finally {
        raw.close();
      }
    };
    const [sessionKey, sessionBackend] = await pidsOf(sessionMode.port);
    expect(sessionKey).toBe(sessionBackend);
    const [txKey, txBackend] = await pidsOf(transactionMode.port);
    expect(txKey).not.toBe(txBackend);
  });

  it("gives the listener PostgreSQL's FATAL 57P01 when its backend is terminated", async () => {
    const raw = await RawClient.connect(sessionMode.port);
    try {
      await raw.login(
        { user: APP_USER, database: APP_DB, application_name: 'sg-raw-listener' },
        APP_PASSWORD,
      );
      await raw.query('listen jobs');
      const [pid] = await backendsOf(0, 'sg-raw-listener');
      await direct[0].query('select pg_terminate_backend($1)', [pid]);
      const fatal = await raw.readMessage(5_000);
      expect(fatal.type).toBe('E');
      const f = errorFields(fatal.body);
      expect([f.V, f.C, f.M]).toEqual([
        'FATAL',
        '57P01',
        'terminating connection due to administrator command',
      ]);
      expect(await raw.waitClosed(5_000)).toBe(true);
    } finally {
      raw.close();
    }
  });
});

describe('LISTEN in transaction mode is refused', () => {
  it.each([
    ['one shard', () => transactionMode, true],
    ['a sharded database', () => shardedTransaction, false],
  ])(
    'on %s: 0A000, the session goes on, and no notification reaches another client',
    async (_what, proxyOf, isOneShard) => {
      const proxy = proxyOf();
      const listener = postgres(proxy.url, { max: 1 });
      const a = new pg.Client({ connectionString: proxy.url });
      const b = new pg.Client({ connectionString: proxy.url });
      await a.connect();
      await b.connect();
      const leaked: string[] = [];
      b.on('notification', (n) => leaked.push(n.payload ?? ''));
      try {
        await expect(listener.listen('jobs', () => undefined)).rejects.toMatchObject({
          code: '0A000',
          message: 'LISTEN is not supported in transaction mode',
        });
        await expect(a.query('/* wake me */ Listen jobs')).rejects.toMatchObject({ code: '0A000' });
        await a.query('begin');
        await expect(a.query('listen jobs')).rejects.toMatchObject({ code: '0A000' });
        // On one shard it fails the transaction, as an error from PostgreSQL would. (A sharded database's refusals
        // inside a block do not fail it yet: its own issue.)
        if (isOneShard) await expect(a.query('select 1')).rejects.toMatchObject({ code: '25P02' });
        await a.query('rollback');
        expect((await a.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
        await a.query("notify jobs, 'x'");
        await b.query('select 1'); // b now runs on the one pooled connection a used
        await new Promise((r) => setTimeout(r, 200));
        expect(leaked).toEqual([]);
      } finally {
        await listener.end();
        await a.end();
        await b.end();
      }
    },
  );
});

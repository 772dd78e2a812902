// node-postgres (`pg`) through shardgate: simple and extended queries, named statements shared over a small pool,
// transactions, errors, notices, LISTEN/NOTIFY, cancel, and 100 clients on a pool of 10 — in transaction and session mode.
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
import { sendCancelRequest } from '../helpers/clients/cancel-request.js';
import { backendsOf, superuserClient } from '../helpers/clients/direct.js';

/** A second login with its own pool (pool_size = 10), so the server can count its connections apart. */
const BULK_USER = { name: 'bulk', password: 'bulk-secret' };
const BULK_POOL_SIZE = 10;

let cluster: PgCluster;
let txProxy: TestProxy;
let sessionProxy: TestProxy;
/** Transaction mode with pool_size = 2: many clients share two server connections. */
let pool2Proxy: TestProxy;
/** Transaction mode; the bulk user has pool_size = 10. */
let pool10Proxy: TestProxy;

const open: pg.Client[] = [];

async function connect(proxy: TestProxy, user = APP_USER, password = APP_PASSWORD): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: proxy.port, user, password, database: APP_DB });
  client.on('error', () => undefined);
  await client.connect();
  open.push(client);
  return client;
}

async function endAll(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await promise;
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error('expected the query to fail, it succeeded');
}

beforeAll(async () => {
  cluster = await testServers(1, { ...APP_SERVER_OPTIONS, users: [...APP_SERVER_OPTIONS.users, BULK_USER] });
  [txProxy, sessionProxy, pool2Proxy, pool10Proxy] = await Promise.all([
    startTestProxy(cluster),
    startTestProxy(cluster, { general: 'pooler_mode = "session"' }),
    startTestProxy(cluster, { userExtra: 'pool_size = 2' }),
    startTestProxy(cluster, {
      moreUsers: `[[users]]\nname = "${BULK_USER.name}"\ndatabase = "${APP_DB}"\npassword = "${BULK_USER.password}"\npool_size = ${BULK_POOL_SIZE}\n`,
    }),
  ]);
  const setup = await connect(txProxy);
  await setup.query(
    'CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);' +
      'CREATE TABLE bulk_t (client int NOT NULL, n int NOT NULL);' +
      `GRANT ALL ON bulk_t TO ${BULK_USER.name};`,
  );
  await endAll();
});

afterAll(async () => {
  await endAll();
  await Promise.all([txProxy, sessionProxy, pool2Proxy, pool10Proxy].map((p) => p?.close()));
  await cluster?.stop();
});

const MODES = [
  ['transaction', () => txProxy],
  ['session', () => sessionProxy],
] as const;

describe.each(MODES)('%s mode', (mode, proxyOf) => {
  afterAll(endAll);

  it('runs simple queries, several statements in one Query', async () => {
    const client = await connect(proxyOf());
    const one = await client.query('SELECT 1 AS one, current_user AS who, current_database() AS db');
    expect(one.rows).toEqual([{ one: 1, who: APP_USER, db: APP_DB }]);
    // Several statements in one simple Query: pg returns one result per statement.
    const multi = (await client.query(
      "SELECT 'a' AS x; SELECT generate_series(1, 3) AS n; VALUES (true)",
    )) as unknown as pg.QueryResult[];
    expect(multi).toHaveLength(3);
    expect(multi[0].rows).toEqual([{ x: 'a' }]);
    expect(multi[1].rows.map((r) => r.n)).toEqual([1, 2, 3]);
    expect(multi[2].rows).toEqual([{ column1: true }]);
    const big = await client.query(
      'SELECT g, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 20000) g',
    );
    expect(big.rowCount).toBe(20000);
    expect(big.rows[19999].g).toBe(20000);
    expect(big.rows[123].pad).toHaveLength(640);
  });

  it('runs parameterized (extended protocol) queries with typed results', async () => {
    const client = await connect(proxyOf());
    const res = await client.query(
      "SELECT $1::int + 1 AS n, $2::text || ' ✓' AS s, length($2::text) AS len, $3::numeric * 2 AS d, $4::bool AS b, $5::text IS NULL AS isnull",
      [41, 'héllo', '1.25', true, null],
    );
    expect(res.rows).toEqual([{ n: 42, s: 'héllo ✓', len: 5, d: '2.50', b: true, isnull: true }]);
    expect(res.fields.map((f) => f.name)).toEqual(['n', 's', 'len', 'd', 'b', 'isnull']);
    for (let i = 0; i < 20; i++) {
      const r = await client.query('SELECT $1::int * $2::int AS p', [i, i + 1]);
      expect(r.rows[0].p).toBe(i * (i + 1));
    }
  });

  it('makes committed rows visible to others and rolled-back rows to no one', async () => {
    const a = await connect(proxyOf());
    const b = await connect(proxyOf());
    const base = mode === 'transaction' ? 100 : 200;
    await a.query('BEGIN');
    await a.query('INSERT INTO accounts VALUES ($1, $2, 10)', [base + 1, 'alice']);
    expect(
      (await a.query('SELECT count(*)::int AS n FROM accounts WHERE id = $1', [base + 1])).rows[0].n,
    ).toBe(1);
    expect(
      (await b.query('SELECT count(*)::int AS n FROM accounts WHERE id = $1', [base + 1])).rows[0].n,
    ).toBe(0);
    await a.query('COMMIT');
    expect((await b.query('SELECT owner FROM accounts WHERE id = $1', [base + 1])).rows).toEqual([
      { owner: 'alice' },
    ]);

    await a.query('BEGIN');
    await a.query('INSERT INTO accounts VALUES ($1, $2, 20)', [base + 2, 'bob']);
    await a.query('UPDATE accounts SET balance = balance + 5 WHERE id = $1', [base + 1]);
    await a.query('ROLLBACK');
    const rows = await b.query('SELECT id, balance FROM accounts WHERE id IN ($1, $2) ORDER BY id', [
      base + 1,
      base + 2,
    ]);
    expect(rows.rows).toEqual([{ id: base + 1, balance: '10' }]);
  });

  it('passes a mid-transaction error through intact; the transaction is aborted until ROLLBACK', async () => {
    const client = await connect(proxyOf());
    await client.query('BEGIN');
    await client.query('SELECT 1');
    const err = await rejection(client.query('SELECT 1/0'));
    expect(err.code).toBe('22012');
    expect(err.message).toBe('division by zero');
    expect(err.severity).toBe('ERROR');
    const aborted = await rejection(client.query('SELECT 1'));
    expect(aborted.code).toBe('25P02');
    expect(aborted.message).toMatch(/current transaction is aborted/);
    await client.query('ROLLBACK');
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);

    // The same through the extended protocol, with an error from a parameterized statement.
    await client.query('BEGIN');
    const err2 = await rejection(client.query('SELECT $1::int / 0', [7]));
    expect(err2.code).toBe('22012');
    expect((await rejection(client.query('SELECT $1::int', [1]))).code).toBe('25P02');
    await client.query('ROLLBACK');
    expect((await client.query('SELECT $1::int AS v', [3])).rows).toEqual([{ v: 3 }]);

    // Errors outside a transaction carry detail and constraint names.
    const dup = await rejection(client.query("INSERT INTO accounts VALUES (1, 'x', 0), (1, 'y', 0)"));
    expect(dup.code).toBe('23505');
    expect(dup.constraint).toBe('accounts_pkey');
    expect(dup.detail).toBe('Key (id)=(1) already exists.');
  });

  it("delivers a NOTICE raised by a DO block to the client's notice handler", async () => {
    const client = await connect(proxyOf());
    const notices: { severity?: string; message?: string }[] = [];
    client.on('notice', (n) => notices.push(n));
    await client.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$");
    expect(notices.map((n) => [n.severity, n.message])).toEqual([
      ['NOTICE', 'hello 42'],
      ['WARNING', 'careful'],
    ]);
    // The connection is still in step: the next query gets its own result.
    expect((await client.query('SELECT 5 AS five')).rows).toEqual([{ five: 5 }]);
  });

  it('cancels a running pg_sleep with a CancelRequest carrying the BackendKeyData', async () => {
    const client = await connect(proxyOf());
    const key = client as unknown as { processID: number; secretKey: number };
    expect(typeof key.processID).toBe('number');
    const started = Date.now();
    const sleeping = rejection(client.query('SELECT pg_sleep(10)'));
    await new Promise((r) => setTimeout(r, 200));
    await sendCancelRequest('127.0.0.1', proxyOf().port, key.processID, key.secretKey);
    const err = await sleeping;
    expect(err.code).toBe('57014');
    expect(err.message).toMatch(/canceling statement due to user request/);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('ignores a CancelRequest with a wrong secret', async () => {
    const client = await connect(proxyOf());
    const key = client as unknown as { processID: number; secretKey: number };
    const sleeping = client.query('SELECT pg_sleep(0.5) AS slept');
    await new Promise((r) => setTimeout(r, 100));
    await sendCancelRequest('127.0.0.1', proxyOf().port, key.processID, (key.secretKey + 1) | 0);
    expect((await sleeping).rows).toEqual([{ slept: '' }]);
  });
});

describe('session mode only', () => {
  afterAll(endAll);

  it('delivers NOTIFY to a LISTENing client', async () => {
    const listener = await connect(sessionProxy);
    const notifier = await connect(sessionProxy);
    const got: pg.Notification[] = [];
    const arrived = new Promise<void>((resolve) => {
      listener.on('notification', (n) => {
        got.push(n);
        if (got.length === 2) resolve();
      });
    });
    await listener.query('LISTEN sg_events');
    await notifier.query("NOTIFY sg_events, 'first'");
    await notifier.query("SELECT pg_notify('sg_events', 'second')");
    await Promise.race([arrived, new Promise((r) => setTimeout(r, 2_000))]);
    expect(got.map((n) => [n.channel, n.payload])).toEqual([
      ['sg_events', 'first'],
      ['sg_events', 'second'],
    ]);
    // Notifications sent from the listener's own session arrive too, after the query that raised them.
    await listener.query("NOTIFY sg_events, 'self'");
    await new Promise((r) => setTimeout(r, 50));
    expect(got.at(-1)?.payload).toBe('self');
  });
});

describe('transaction mode over a pool of 2', () => {
  afterAll(endAll);

  it('keeps named prepared statements of 6 clients apart while they share 2 server connections', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(pool2Proxy)));
    // Every client uses the same statement names, each with a text of its own.
    const run = async (client: pg.Client, k: number): Promise<void> => {
      for (let i = 0; i < 25; i++) {
        await client.query('BEGIN');
        const a = await client.query({
          name: 'calc',
          text: `SELECT $1::int * ${k + 2} AS v, ${k} AS client`,
          values: [i],
        });
        expect(a.rows).toEqual([{ v: i * (k + 2), client: k }]);
        const b = await client.query({
          name: 'label',
          text: `SELECT $1::text || '-${k}' AS s`,
          values: [`r${i}`],
        });
        expect(b.rows).toEqual([{ s: `r${i}-${k}` }]);
        await client.query('COMMIT');
        // And outside any transaction block (each statement its own transaction).
        const c = await client.query({
          name: 'calc',
          text: `SELECT $1::int * ${k + 2} AS v, ${k} AS client`,
          values: [i + 1000],
        });
        expect(c.rows).toEqual([{ v: (i + 1000) * (k + 2), client: k }]);
      }
    };
    await Promise.all(clients.map((c, k) => run(c, k)));

    const stats = pool2Proxy.proxy.pools.all()[0].shards[0].stats();
    expect(stats.total).toBeLessThanOrEqual(2);
  });

  it('re-prepares a statement on whichever server connection a transaction lands on', async () => {
    const [a, b, c] = await Promise.all([connect(pool2Proxy), connect(pool2Proxy), connect(pool2Proxy)]);
    await a.query({ name: 'shared', text: 'SELECT $1::int + 100 AS v', values: [1] });
    // b holds one server connection in a transaction; c holds the other: a must wait, then reuse 'shared'.
    await b.query('BEGIN');
    await b.query('SELECT 1');
    await c.query('BEGIN');
    await c.query('SELECT 1');
    const pending = a.query({ name: 'shared', text: 'SELECT $1::int + 100 AS v', values: [2] });
    await new Promise((r) => setTimeout(r, 50));
    await b.query('COMMIT');
    expect((await pending).rows).toEqual([{ v: 102 }]);
    await c.query('COMMIT');
    for (let i = 0; i < 10; i++) {
      const res = await a.query({ name: 'shared', text: 'SELECT $1::int + 100 AS v', values: [i] });
      expect(res.rows).toEqual([{ v: 100 + i }]);
    }
  });
});

describe('100 clients on a pool of 10', () => {
  it('runs every transaction, and the server never sees more than 10 connections for the pool', async () => {
    const admin = await superuserClient(cluster.servers[0], APP_DB);
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await backendsOf(admin, BULK_USER.name));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const clients: pg.Client[] = [];
    try {
      const connected = await Promise.all(
        Array.from({ length: 100 }, () => connect(pool10Proxy, BULK_USER.name, BULK_USER.password)),
      );
      clients.push(...connected);
      await Promise.all(
        clients.map(async (client, k) => {
          for (let i = 0; i < 3; i++) {
            await client.query('BEGIN');
            await client.query('INSERT INTO bulk_t VALUES ($1, $2)', [k, i]);
            await client.query('SELECT pg_sleep(0.002)');
            const n = await client.query('SELECT count(*)::int AS n FROM bulk_t WHERE client = $1', [k]);
            expect(n.rows[0].n).toBe(i + 1);
            await client.query('COMMIT');
          }
        }),
      );
    } finally {
      sampling = false;
      await sampler;
    }
    const total = await admin.query(
      'SELECT count(*)::int AS n, count(DISTINCT client)::int AS c FROM bulk_t',
    );
    await admin.end();
    expect(total.rows).toEqual([{ n: 300, c: 100 }]);
    expect(maxSeen).toBeGreaterThan(1);
    expect(maxSeen).toBeLessThanOrEqual(BULK_POOL_SIZE);
    await endAll();
  }, 60_000);
});

// Named prepared statements under bounded caches: with prepared_statements_limit each server connection keeps at
// most that many of the proxy's statements (the least recently used are closed), and the proxy's own statement cache
// drops statements no client uses beyond prepared_statements_cache_size. Clients re-using statements closed on their
// server, or preparing again texts the cache dropped (under a new name, while a server may still hold the old one),
// always get their own statement's results — in transaction mode, across several server connections.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const LIMIT = 3;
/** Statement i returns i: a client bound to the wrong server statement would see another number. */
const text = (i: number, pad = 0): string => `select ${i}::int as n, $1::text as t /* ${'p'.repeat(pad)} */`;

let cluster: PgCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await testServers(1, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    general: `prepared_statements_limit = ${LIMIT}\nprepared_statements_cache_size = 65536`,
    userExtra: 'pool_size = 3',
  });
});

afterAll(async () => {
  await proxy?.close();
  await cluster?.stop();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  return c;
}

async function run(c: pg.Client, i: number, name = `s${i}`, pad = 0): Promise<void> {
  const r = await c.query<{ n: number; t: string }>({ name, text: text(i, pad), values: [`v${i}`] });
  expect(r.rows).toEqual([{ n: i, t: `v${i}` }]);
}

/** Statements prepared on each server connection of the app user (from the server itself). */
async function preparedPerBackend(): Promise<number[]> {
  // pg_prepared_statements is per session; ask every app backend through a transaction-mode client each time.
  const counts: number[] = [];
  const clients = await Promise.all([connect(), connect(), connect()]);
  try {
    // Hold all three server connections at once, so each client sees a different one.
    for (const c of clients) await c.query('begin');
    for (const c of clients) {
      const r = await c.query<{ n: number }>(
        "select count(*)::int as n from pg_prepared_statements where name like 'sg\\_%'",
      );
      counts.push(r.rows[0].n);
    }
    for (const c of clients) await c.query('commit');
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return counts;
}

describe('bounded prepared statements (transaction mode, three server connections)', () => {
  it('keeps at most prepared_statements_limit per server connection; re-used statements still answer right', async () => {
    const clients = await Promise.all([connect(), connect(), connect()]);
    try {
      // Ten statements per client, used round-robin and concurrently: servers change between transactions and
      // each holds more than the limit, so statements are closed and prepared again all the time.
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          clients.map(async (c) => {
            for (let i = 0; i < 10; i++) await run(c, i);
          }),
        );
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Closing happens at the start of a server's next batch: one batch's worth (one Parse) may come on top.
    for (const n of await preparedPerBackend()) expect(n).toBeLessThanOrEqual(LIMIT + 1);
  });

  it('prepares a text again under a new name after the cache dropped it; servers holding the old name are not confused', async () => {
    // 1 KiB statements: the 64 KiB cache holds about 60 unused ones.
    const first = await connect();
    for (let i = 100; i < 200; i++) await run(first, i, `a${i}`, 1000);
    await first.end(); // its statements are unused now: most are dropped
    const second = await connect();
    try {
      // Same texts under other client names, and in another order: each must return its own number.
      for (let i = 199; i >= 100; i--) await run(second, i, `b${i}`, 1000);
      for (let i = 100; i < 200; i += 7) await run(second, i, `b${i}`, 1000);
    } finally {
      await second.end();
    }
    // Server-side names are never reused for another text: every sg_ name means one text on every backend.
    const seen = new Map<string, string>();
    const clients = await Promise.all([connect(), connect(), connect()]);
    try {
      for (const c of clients) await c.query('begin');
      for (const c of clients) {
        const rows = await c.query<{ name: string; statement: string }>(
          "select name, statement from pg_prepared_statements where name like 'sg\\_%'",
        );
        for (const row of rows.rows) {
          const known = seen.get(row.name);
          if (known !== undefined) expect(row.statement).toBe(known);
          seen.set(row.name, row.statement);
        }
      }
      for (const c of clients) await c.query('commit');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

// query_timeout on every request path (issue 11, contract section E), on 2 real shards with query_timeout = 500 ms:
// a statement on one shard, and the paths where the proxy rewrites what the shards run — a fan-out ORDER BY … LIMIT …
// OFFSET, avg() across shards, a multi-row INSERT split by shard, a fan-out with HAVING — are each cancelled (57014)
// within a few seconds, change nothing, and leave the connection usable. Each slow statement would run ≥ 3 s.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn } from '../helpers/sharding.js';
import {
  errorOf,
  expectNothingPrepared,
  MATRIX_TABLES_SQL,
  proxyClient,
  startAtomicityProxy,
  usersOn,
} from '../helpers/write-atomicity.js';

/** What each slow statement would take without the timeout (per row, per shard). */
const SLEEP_S = 3;
/** Cancelled "within a few seconds": well under one SLEEP_S. */
const CANCELLED_WITHIN_MS = 2_500;

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let c: pg.Client;
/** One users row on each shard. */
const a = idOn(0, 1);
const b = idOn(1, 1);

/** Run `sql` (extended protocol when `params` are given); expect 57014 within the bound and a usable connection. */
async function expectCancelled(sql: string, params?: unknown[]): Promise<void> {
  const t0 = Date.now();
  const err = await errorOf(c.query(sql, params));
  const tookMs = Date.now() - t0;
  expect(err?.code).toBe('57014');
  expect(tookMs).toBeLessThan(CANCELLED_WITHIN_MS);
  expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startAtomicityProxy(cluster, 'wm_timeout', { general: 'query_timeout = 500' });
  direct = await directShardClients(cluster);
  const setup = await proxyClient(proxy);
  await setup.query(MATRIX_TABLES_SQL);
  await setup.query(`create function slow(v bigint) returns bigint language plpgsql volatile as $$
    begin perform pg_sleep(${SLEEP_S}); return v; end $$`);
  await setup.query(`create function sleep_on_slow_row() returns trigger language plpgsql as $$
    begin if new.name = 'slow' then perform pg_sleep(${SLEEP_S}); end if; return new; end $$`);
  await setup.query(`create trigger sleep_on_slow_row before insert on users
    for each row execute function sleep_on_slow_row()`);
  await setup.query("insert into users (id, name) values ($1, 'fast'), ($2, 'fast')", [a, b]);
  await setup.end();
});

beforeEach(async () => {
  c = await proxyClient(proxy);
});

afterEach(async () => {
  await c.end().catch(() => undefined);
  await expectNothingPrepared(direct);
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('E. query_timeout cancels every path (57014) and the connection goes on', () => {
  it('a statement on one shard (baseline)', async () => {
    await expectCancelled(`select slow(id) from users where id = ${a}`);
  });

  it('a fan-out SELECT … ORDER BY … LIMIT 1 OFFSET 1 whose rows call pg_sleep', async () => {
    await expectCancelled('select id, slow(id) as s from users order by id limit 1 offset 1');
  });

  it('the same, extended protocol', async () => {
    await expectCancelled(
      'select id, slow(id) as s from users where id > $1 order by id limit 1 offset 1',
      [0],
    );
  });

  it('avg() across shards over pg_sleep', async () => {
    await expectCancelled('select avg(slow(id)) from users');
  });

  it('a fan-out with HAVING', async () => {
    await expectCancelled(
      'select name, count(*) from users where slow(id) > 0 group by name having count(*) > 0',
    );
  });

  it('a multi-row INSERT split by shard into a table whose row trigger sleeps: nothing inserted', async () => {
    const x = idOn(0, 100);
    const y = idOn(1, 100);
    await expectCancelled(`insert into users (id, name) values (${x}, 'slow'), (${y}, 'slow')`);
    expect(await usersOn(direct[0], [x])).toBe(0);
    expect(await usersOn(direct[1], [y])).toBe(0);
  });
});

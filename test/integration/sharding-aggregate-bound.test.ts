// count(DISTINCT x) of a column that is not the sharding key holds the distinct values in the proxy: past the bound
// (64 MiB for the statement, every group together) the client gets 54000 naming it, the shards' statements end, and
// the session goes on. Below it, the same shape answers as one database would.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { AGGREGATE_VALUES_MAX_BYTES } from '../../src/execute/held-bytes.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let client: pg.Client;
/** Two users on each of the two shards. */
const IDS = [idOn(0, 1), idOn(0, 100), idOn(1, 1), idOn(1, 100)];

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
  client = new pg.Client({ connectionString: proxy.url, query_timeout: 60_000 });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
  for (const id of IDS) await client.query('insert into users values ($1, $2)', [id, `u${id}`]);
}, 60_000);

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('the bound on DISTINCT values held in the proxy', () => {
  it('answers below it', async () => {
    const res = await client.query<{ n: string }>(
      'select count(distinct g % 1000) as n from users, generate_series(1, 5000) g',
    );
    expect(res.rows).toEqual([{ n: '1000' }]);
  });

  it('fails with 54000 past it, naming it; the session goes on', async () => {
    expect(AGGREGATE_VALUES_MAX_BYTES).toBe(64 * 1024 * 1024);
    // 4 users × 300,000: 1.2 million distinct values, about 90 MiB of them held.
    const err = await client
      .query('select count(distinct u.id * 1000000 + g) from users u, generate_series(1, 300000) g')
      .then(
        () => null,
        (e: pg.DatabaseError) => e,
      );
    expect(err?.code).toBe('54000');
    expect(err?.message).toMatch(/count\(DISTINCT …\) across shards .* exceed 64 MiB/);
    expect(err?.hint).toMatch(/sharding key/);
    expect((await client.query('select count(distinct id)::int as n from users')).rows).toEqual([{ n: 4 }]);
  }, 60_000);
});

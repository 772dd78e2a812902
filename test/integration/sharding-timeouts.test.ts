// query_timeout holds on every path a sharded request can take, not only where client frames are forwarded as they
// came: fan-outs the proxy rewrites for its merge (LIMIT + OFFSET, avg, HAVING) and multi-row INSERTs split by shard
// are cancelled too (57014), and the connection keeps working.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let client: pg.Client;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { general: 'query_timeout = 500', extraPgdog: USERS_SHARDING_TOML });
  client = new pg.Client({ connectionString: proxy.url });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
  const ids = [idOn(0, 1), idOn(0, 10), idOn(1, 1), idOn(1, 10)];
  await client.query(`insert into users values ${ids.map((id) => `(${id}, 'n${id}')`).join(', ')}`);
  // On every shard: inserting a row named 'slow' takes 3 s.
  for (const d of await directShardClients(cluster)) {
    await d.query(`
      create function slow_insert() returns trigger language plpgsql as $$
      begin if new.name = 'slow' then perform pg_sleep(3); end if; return new; end $$;
      create trigger slow_insert before insert on users for each row execute function slow_insert();`);
    await d.end();
  }
});

afterAll(async () => {
  await client?.end();
  await proxy?.close();
  await cluster?.stop();
});

/** `sql` fails with 57014 (PostgreSQL's error for a cancelled statement: it did not run to its end) and the connection works on. */
async function cancelled(sql: string): Promise<void> {
  const err = await client.query(sql).then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  expect(err?.code).toBe('57014');
  const r = await client.query('select 1 as one');
  expect(r.rows).toEqual([{ one: 1 }]);
}

describe('query_timeout on rewritten and split requests', () => {
  it.each([
    ['a fan-out with LIMIT and OFFSET', 'select id from users, pg_sleep(3) order by id limit 1 offset 1'],
    ['avg() across shards', 'select avg(id) from users, pg_sleep(3)'],
    [
      'GROUP BY with HAVING across shards',
      'select name, count(*) from users, pg_sleep(3) group by name having count(*) > 0',
    ],
  ])('cancels %s', async (_what, sql) => {
    await cancelled(sql);
  });

  it('cancels a multi-row INSERT split across shards', async () => {
    const [a, b] = [idOn(0, 100), idOn(1, 100)];
    await cancelled(`insert into users values (${a}, 'slow'), (${b}, 'slow')`);
    const r = await client.query('select count(*)::int as n from users where id = any($1)', [[a, b]]);
    expect(r.rows[0].n).toBe(0);
  });
});

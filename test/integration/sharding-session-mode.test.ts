// Session pooling on a sharded database: a named prepared statement parsed on one shard is used for keys on another
// (the proxy prepares it there first), and the session's servers stay attached between transactions.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let client: pg.Client;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    general: 'pooler_mode = "session"',
    extraPgdog: USERS_SHARDING_TOML,
  });
  client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
});

afterAll(async () => {
  await client?.end();
  await proxy?.close();
  await cluster?.stop();
});

describe('session mode on a sharded database', () => {
  it('uses a named statement prepared on one shard for keys on the other (regression)', async () => {
    const a = idOn(0, 1);
    const b = idOn(1, 1);
    await client.query(`insert into users values (${a}, 'on 0'), (${b}, 'on 1')`);
    const byId = (id: number) =>
      client.query({ name: 'user_by_id', text: 'select name from users where id = $1', values: [id] });
    expect((await byId(a)).rows).toEqual([{ name: 'on 0' }]);
    expect((await byId(b)).rows).toEqual([{ name: 'on 1' }]); // Bind only: shard 1 never saw the client's Parse
    expect((await byId(a)).rows).toEqual([{ name: 'on 0' }]);
  });
});

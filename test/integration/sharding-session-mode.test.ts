// Session pooling on a sharded database: a named prepared statement parsed on one shard is used for keys on another
// (the proxy prepares it there first), and the session's servers stay attached between transactions — a server held
// but not yet in the transaction joins it when first used, and gets a SET that a block it missed committed.
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

  it('brings a held server into a transaction block, and in step with SETs committed without it', async () => {
    const a = idOn(0, 50);
    const b = idOn(1, 50);
    await client.query(`insert into users values (${a}, 'a'), (${b}, 'b')`); // both shards' servers now held
    await client.query('begin isolation level repeatable read');
    await client.query(`update users set name = 'a2' where id = ${a}`);
    const r = await client.query(
      `select current_setting('transaction_isolation') as iso, name from users where id = ${b}`,
    );
    expect(r.rows).toEqual([{ iso: 'repeatable read', name: 'b' }]); // shard 1 joined, with the BEGIN's options
    await client.query('commit');
    // A block that reaches shard 0 only commits a SET: shard 1's held server gets it before its next statement.
    await client.query('begin');
    await client.query(`update users set name = 'a3' where id = ${a}`);
    await client.query("set statement_timeout = '6s'");
    await client.query('commit');
    const t = await client.query(
      `select current_setting('statement_timeout') as t from users where id = ${b}`,
    );
    expect(t.rows).toEqual([{ t: '6s' }]);
    await client.query('begin');
    await client.query("set statement_timeout = '1s'");
    await client.query('rollback');
    for (const id of [a, b]) {
      const u = await client.query(
        `select current_setting('statement_timeout') as t from users where id = ${id}`,
      );
      expect(u.rows).toEqual([{ t: '6s' }]);
    }
  });
});

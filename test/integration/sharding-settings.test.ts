// SET / RESET on a sharded database in transaction mode: a setting the client made follows it onto every server
// connection it later gets (replayed before its request), and does not leak to the next client of that connection.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
const clients: pg.Client[] = [];

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  clients.push(c);
  return c;
}

/** statement_timeout as seen by the server connection that runs a point query on `shard`. */
async function timeoutOn(c: pg.Client, shard: number): Promise<string> {
  const r = await c.query(
    `select current_setting('statement_timeout') as t, pg_backend_pid() as pid from users where id = ${idOn(shard, 1)}`,
  );
  return `${r.rows[0].t}`;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, userExtra: 'pool_size = 3' });
  const c = await connect();
  await c.query('create table users (id bigint primary key, name text)');
  await c.query(`insert into users values (${idOn(0, 1)}, 'a'), (${idOn(1, 1)}, 'b')`);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('session settings across server connections (transaction mode)', () => {
  it('replays a SET on the other server connections the client gets, and resets it for the next client', async () => {
    const a = await connect();
    const b = await connect();
    await a.query("set statement_timeout = '4321ms'");
    expect(await timeoutOn(a, 0)).toBe('4321ms');
    // B holds a transaction on every shard: A's next queries run on other server connections.
    await b.query('begin');
    await b.query('select count(*) from users');
    expect(await timeoutOn(b, 0)).toBe('0'); // B got A's former connection: A's SET was undone for B
    expect(await timeoutOn(a, 0)).toBe('4321ms');
    expect(await timeoutOn(a, 1)).toBe('4321ms');
    await b.query('commit');
    await a.query('reset statement_timeout');
    expect(await timeoutOn(a, 1)).toBe('0');
  });

  it('does not keep a SET that failed, nor one inside a transaction that rolled back', async () => {
    const c = await connect();
    await expect(c.query("set statement_timeout = 'nonsense'")).rejects.toMatchObject({ code: '22023' });
    expect(await timeoutOn(c, 0)).toBe('0');
    await c.query('begin');
    await c.query("set statement_timeout = '999ms'");
    await c.query('rollback');
    expect(await timeoutOn(c, 0)).toBe('0');
    expect(await timeoutOn(c, 1)).toBe('0');
  });

  it('forgets everything on DISCARD ALL / RESET ALL', async () => {
    const c = await connect();
    await c.query("set statement_timeout = '777ms'");
    await c.query("set lock_timeout = '555ms'");
    await c.query('reset all');
    const r = await c.query(
      `select current_setting('statement_timeout') as s, current_setting('lock_timeout') as l from users where id = ${idOn(1, 1)}`,
    );
    expect(r.rows[0]).toEqual({ s: '0', l: '0' });
  });
});

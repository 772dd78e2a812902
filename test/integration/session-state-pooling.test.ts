// A client's session state in transaction mode on a one-shard database: its SETs (custom settings such as an RLS
// tenant, search_path, work_mem, SET ROLE, set_config(…, false)) and SQL-level PREPAREs follow it onto every server
// it is given, and never reach another client that later gets the same server. Both clients share a pool of one
// server, so the second client always gets the first one's server. Compared with what PostgreSQL gives a client of
// its own (a SET in a rolled-back block is undone, SET LOCAL ends with its block).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { superuserClient } from '../helpers/clients/direct.js';
import { APP_DB, APP_SERVER_OPTIONS, APP_USER, startTestProxy, type TestProxy } from '../helpers/proxy.js';

let cluster: PgCluster;
/** pool_size = 1: every client of the app user gets the same server. */
let one: TestProxy;
/** pool_size = 2: a client's next transaction may get the other server. */
let two: TestProxy;
const open: pg.Client[] = [];

async function client(proxy: TestProxy): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  open.push(c);
  return c;
}

/**
 * What the session sees of the settings the tests change. A custom setting a server once had reads '' after it is
 * reset (PostgreSQL keeps the placeholder), where a server that never had it gives NULL: both read as ''.
 */
async function seen(c: pg.Client): Promise<Record<string, string | null>> {
  const r = await c.query<Record<string, string | null>>(
    "select coalesce(current_setting('app.tenant', true), '') as tenant, current_setting('work_mem') as work_mem, " +
      "current_setting('search_path') as search_path, current_user as role, " +
      '(select count(*)::text from pg_prepared_statements where from_sql) as prepared',
  );
  return r.rows[0];
}

beforeAll(async () => {
  cluster = await testServers(1, APP_SERVER_OPTIONS);
  const su = await superuserClient(cluster.servers[0], APP_DB);
  await su.query('create role reader nologin');
  await su.query(`grant reader to ${APP_USER}`);
  await su.end();
  one = await startTestProxy(cluster, { userExtra: 'pool_size = 1' });
  two = await startTestProxy(cluster, { userExtra: 'pool_size = 2' });
}, 120_000);

afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await one?.close();
  await two?.close();
  await cluster?.stop();
});

describe('session state in transaction mode, one shard', () => {
  it("a client's SETs, SET ROLE, set_config and PREPARE never reach the next client of its server", async () => {
    const a = await client(one);
    const before = await seen(a);
    await a.query("set app.tenant = '42'");
    await a.query("set work_mem = '77MB'");
    await a.query('set search_path = pg_catalog, public');
    await a.query('set role reader');
    await a.query("select set_config('app.other', 'x', false)");
    await a.query('prepare mine as select 1');
    const b = await client(one);
    expect(await seen(b)).toEqual(before);
    expect((await b.query("select current_setting('app.other', true) as v")).rows[0].v ?? '').toBe('');
    await expect(b.query('execute mine')).rejects.toMatchObject({ code: '26000' });
    // …and the first client still has all of it, on the same server after the other client's turn.
    expect(await seen(a)).toEqual({
      tenant: '42',
      work_mem: '77MB',
      search_path: 'pg_catalog, public',
      role: 'reader',
      prepared: '1',
    });
    expect((await a.query('execute mine')).rows).toEqual([{ '?column?': 1 }]);
    await a.query('reset all');
    await a.query('deallocate all');
    await a.query('reset role');
    expect(await seen(a)).toEqual(before);
  });

  it('a SET in a rolled-back block is undone, SET LOCAL ends with its block, a committed SET stays', async () => {
    const a = await client(one);
    await a.query('begin');
    await a.query("set app.tenant = 'rolled back'");
    await a.query('rollback');
    await a.query('begin');
    await a.query("set local app.tenant = 'local'");
    expect((await a.query("select current_setting('app.tenant', true) as v")).rows[0].v).toBe('local');
    await a.query('commit');
    const b = await client(one);
    expect((await b.query("select current_setting('app.tenant', true) as v")).rows[0].v ?? '').toBe('');
    expect((await a.query("select current_setting('app.tenant', true) as v")).rows[0].v ?? '').toBe('');
    await a.query('begin');
    await a.query("set app.tenant = 'committed'");
    await a.query('commit');
    expect((await b.query("select current_setting('app.tenant', true) as v")).rows[0].v ?? '').toBe('');
    expect((await a.query("select current_setting('app.tenant', true) as v")).rows[0].v).toBe('committed');
  });

  it('RESET, RESET ALL and DISCARD ALL return a startup setting to its startup value, as on a connection of its own', async () => {
    const c = new pg.Client({ connectionString: one.url, options: '-c statement_timeout=5s' });
    await c.connect();
    open.push(c);
    const timeout = async (): Promise<string> =>
      (await c.query<{ t: string }>("select current_setting('statement_timeout') as t")).rows[0].t;
    expect(await timeout()).toBe('5s');
    for (const reset of [
      'reset statement_timeout',
      'reset all',
      'discard all',
      'set statement_timeout to default',
    ]) {
      await c.query('set statement_timeout = 7000');
      expect(await timeout()).toBe('7s');
      await c.query(reset);
      expect(await timeout()).toBe('5s');
      const other = await client(one); // the same server, in between
      expect((await other.query("select current_setting('statement_timeout') as t")).rows[0].t).toBe('0');
      expect(await timeout()).toBe('5s');
    }
  });

  it("a client's SETs follow it onto another server of its pool", async () => {
    const a = await client(two);
    await a.query("set app.tenant = '7'");
    // Hold one server in a block so that a's next statements get the other one, then the first again.
    const holder = await client(two);
    const servers = new Set<number>();
    for (let i = 0; i < 4; i++) {
      if (i === 2) await holder.query('begin; select 1');
      const r = await a.query<{ pid: number; v: string }>(
        "select pg_backend_pid() as pid, current_setting('app.tenant', true) as v",
      );
      servers.add(r.rows[0].pid);
      expect(r.rows[0].v).toBe('7');
    }
    await holder.query('commit');
    expect(servers.size).toBe(2);
  });
});

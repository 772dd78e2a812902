// Relations and functions the config does not name, learnt from the shards' catalogs on first use: a view over a
// sharded table is read like the table (every shard, merged — never one shard's rows), what was learnt is forgotten
// on DDL, a temporary table is seen as one (its transaction commits without PREPARE), and a call of a function that
// may write is routed by what its body does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let session: TestProxy;
let direct: pg.Client[];
let client: pg.Client;
let walDir = '';
const open: pg.Client[] = [];

async function connect(p: TestProxy): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: p.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (e: pg.DatabaseError) => e.code,
  );
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  const general = 'two_phase_commit = false';
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, general });
  walDir = mkdtempSync(join(tmpdir(), 'shardgate-catalog-'));
  session = await startTestProxy(cluster, {
    extraPgdog: USERS_SHARDING_TOML,
    general: `pooler_mode = "session"\ntwo_phase_commit = true\ntwo_phase_commit_auto = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "catalog"`,
  });
  direct = await directShardClients(cluster);
  client = await connect(proxy);
  await client.query('create table users (id bigint primary key, name text)');
  const ids = [1, 2, 3, 4, 5, 6, 7];
  await client.query(`insert into users values ${ids.map((id) => `(${id}, 'u${id}')`).join(', ')}`);
});

afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await session?.close();
  await cluster?.stop();
  if (walDir !== '') rmSync(walDir, { recursive: true, force: true });
});

describe('views over sharded tables', () => {
  it('count(*) through a view answers for every shard, every time (it used to alternate between shards)', async () => {
    await client.query('create view v as select id, name from users');
    for (let i = 0; i < 4; i++)
      expect((await client.query('select count(*)::int as n from v')).rows).toEqual([{ n: 7 }]);
    const rows = await client.query('select id from v order by id desc limit 3');
    expect(rows.rows.map((r) => Number(r.id))).toEqual([7, 6, 5]);
  });

  it('forgets what it learnt on DDL: a table replaced by a view over users is read as the view', async () => {
    await client.query('create table swap (id bigint)');
    await client.query('insert into swap values (1)');
    expect((await client.query('select count(*)::int as n from swap')).rows).toEqual([{ n: 1 }]);
    await client.query('drop table swap');
    await client.query('create view swap as select id from users');
    expect((await client.query('select count(*)::int as n from swap')).rows).toEqual([{ n: 7 }]);
  });

  it('refuses an INSERT through such a view and a materialized view of a sharded table', async () => {
    expect(await codeOf(client.query("insert into v (id, name) values (100, 'x')"))).toBe('0A000');
    expect(await codeOf(client.query('create materialized view mv as select id from users'))).toBe('0A000');
    for (const d of direct) {
      expect((await d.query("select count(*)::int as n from pg_class where relname = 'mv'")).rows[0].n).toBe(
        0,
      );
    }
  });
});

describe('temporary tables', () => {
  it('a temporary table named without pg_temp is known as one: writes to it on every shard commit without PREPARE', async () => {
    const c = await connect(session);
    const prepared = session.proxy.txn!.counters.prepared;
    await c.query('create temp table scratch (a int)');
    await c.query('insert into scratch values (1), (2)');
    expect((await c.query('select count(*)::int as n from scratch')).rows).toEqual([{ n: 2 }]);
    // PostgreSQL refuses PREPARE TRANSACTION after temporary tables: these commits could not use it.
    expect(session.proxy.txn!.counters.prepared).toBe(prepared);
  });
});

describe('functions that may write', () => {
  it('no FROM: a function writing a copied table runs on every shard; one using a sharded table is refused', async () => {
    await client.query('create table tally (n int)');
    await client.query(
      "create function bump() returns int language sql volatile as 'insert into tally values (1) returning 1'",
    );
    await client.query(`create function add_user(i bigint) returns void language plpgsql as $$
      begin insert into users values (i, 'f'); end $$`);
    expect((await client.query('select bump() as b')).rows).toEqual([{ b: 1 }]);
    for (const d of direct) expect((await d.query('select count(*)::int as n from tally')).rows[0].n).toBe(1);
    const id = idOn(0, 500);
    expect(await codeOf(client.query(`select add_user(${id})`))).toBe('0A000');
    for (const d of direct) {
      expect((await d.query('select count(*)::int as n from users where id = $1', [id])).rows[0].n).toBe(0);
    }
    // Routed by hand it runs where it is sent.
    await client.query(`/* shardgate: sharding_key=${id} */ select add_user(${id})`);
    expect(
      (await direct[0].query('select count(*)::int as n from users where id = $1', [id])).rows[0].n,
    ).toBe(1);
  });

  it('functions from extensions and stable or immutable ones are not writes (read on one shard)', async () => {
    await client.query("create function twice(i int) returns int language sql immutable as 'select i * 2'");
    expect((await client.query('select twice(21) as t')).rows).toEqual([{ t: 42 }]);
  });
});

describe('size functions', () => {
  it('the size of a sharded table is the sum of its shards’ (simple and extended protocol)', async () => {
    const sizes = await Promise.all(
      direct.map(async (d) => {
        const r = await d.query(
          "select pg_total_relation_size('users')::bigint as t, pg_table_size('users')::bigint as s",
        );
        return [BigInt(r.rows[0].t as string), BigInt(r.rows[0].s as string)];
      }),
    );
    const sum = (i: number): string => String(sizes.reduce((acc, s) => acc + s[i], 0n));
    const simple = await client.query(
      "select pg_total_relation_size('users') as t, pg_table_size('users') as s",
    );
    expect(simple.rows).toEqual([{ t: sum(0), s: sum(1) }]);
    const extended = await client.query({ text: "select pg_total_relation_size('users') as t", values: [] });
    expect(extended.rows).toEqual([{ t: sum(0) }]);
  });
});

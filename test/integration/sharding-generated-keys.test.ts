// Keys the database generates, on 2 real shards: an INSERT that leaves a sharded table's serial / identity columns out
// (or gives DEFAULT) gets values from the sequence of record (shard 0's), so the sharding key is known before routing
// and every such column is unique across shards; RETURNING gives the values back as PostgreSQL would.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, userShard } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
const open: pg.Client[] = [];

const SHARDING = `
[[sharded_tables]]
database = "${APP_DB}"
name = "users"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "orders"
column = "user_id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "things"
column = "id"
data_type = "integer"

[[sharded_tables]]
database = "${APP_DB}"
name = "items"
column = "id"
data_type = "bigint"
`;

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

/** The shard each id is stored on (read directly), by id. */
async function placement(table: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const [shard, d] of direct.entries()) {
    for (const r of (await d.query<{ id: string }>(`select id from ${table}`)).rows)
      out.set(Number(r.id), shard);
  }
  return out;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: SHARDING });
  direct = await directShardClients(cluster);
  const c = await connect();
  await c.query('create table users (id bigserial primary key, name text not null)');
  await c.query(
    'create table orders (id serial, user_id bigint not null, item text, primary key (user_id, id))',
  );
  await c.query('create table things (id int generated always as identity primary key, label text)');
});

afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('generated sharding keys', () => {
  it('fills a left-out bigserial key, routes each row by it, and RETURNING gives the values back', async () => {
    const c = await connect();
    const one = await c.query("insert into users (name) values ('ada') returning id, name");
    expect(one.rows).toHaveLength(1);
    const several = await c.query("insert into users (name) values ('bob'), ('cy'), ('dee') returning id");
    const ids = [Number(one.rows[0].id), ...several.rows.map((r) => Number(r.id))];
    expect(new Set(ids).size).toBe(4);
    const stored = await placement('users');
    for (const id of ids) expect(stored.get(id)).toBe(userShard(id));
  });

  it('replaces DEFAULT, and fills the extended protocol’s inserts with the client’s parameters kept', async () => {
    const c = await connect();
    const d = await c.query("insert into users (id, name) values (default, 'eve') returning id");
    const p = await c.query({
      text: 'insert into users (name) values ($1) returning id, name',
      values: ['fay'],
    });
    expect(p.rows[0].name).toBe('fay');
    const named = { name: 'ins_user', text: 'insert into users (name) values ($1) returning id' };
    const a = await c.query({ ...named, values: ['gus'] });
    const b = await c.query({ ...named, values: ['hal'] });
    const ids = [d, p, a, b].map((r) => Number(r.rows[0].id));
    expect(new Set(ids).size).toBe(4);
    const stored = await placement('users');
    for (const id of ids) expect(stored.get(id)).toBe(userShard(id));
  });

  it('fills an int identity key GENERATED ALWAYS (int4 hash), and DEFAULT VALUES', async () => {
    const c = await connect();
    const r = await c.query("insert into things (label) values ('x'), ('y') returning id");
    const dv = await c.query('insert into things default values returning id');
    const ids = [...r.rows, ...dv.rows].map((row) => Number(row.id));
    expect(new Set(ids).size).toBe(3);
    const stored = await placement('things');
    for (const id of ids) expect(stored.has(id)).toBe(true);
  });

  it('a serial column that is not the sharding key is unique across shards too', async () => {
    const c = await connect();
    const users = (await c.query('select id from users order by id')).rows.map((r) => Number(r.id));
    const returned: number[] = [];
    for (const user of users) {
      const r = await c.query('insert into orders (user_id, item) values ($1, $2) returning id', [
        user,
        'thing',
      ]);
      returned.push(Number(r.rows[0].id));
    }
    const all: number[] = [];
    for (const d of direct)
      all.push(...(await d.query('select id from orders')).rows.map((r) => Number(r.id)));
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort((a, b) => a - b)).toEqual(returned.sort((a, b) => a - b));
  });

  it('concurrent clients never get the same value', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect()));
    const ids = (
      await Promise.all(
        clients.map(async (c, i) => {
          const got: number[] = [];
          for (let n = 0; n < 25; n++) {
            const r = await c.query('insert into users (name) values ($1) returning id', [`c${i}-${n}`]);
            got.push(Number(r.rows[0].id));
          }
          return got;
        }),
      )
    ).flat();
    expect(new Set(ids).size).toBe(100);
  });

  it('a multi-statement Query creating the table it then fills runs statement by statement (regression)', async () => {
    const c = await connect();
    const results = (await c.query(
      "create table items (id bigserial primary key, v text); insert into items (v) values ('a'), ('b'); select count(*)::int as n from items",
    )) as unknown as pg.QueryResult[];
    expect(results.map((r) => r.command)).toEqual(['CREATE', 'INSERT', 'SELECT']);
    expect(results[2].rows).toEqual([{ n: 2 }]);
  });
});

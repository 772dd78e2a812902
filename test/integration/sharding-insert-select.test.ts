// INSERT … SELECT on 2 real shards with two-phase commit (issue 12): where the rows' keys do not come unchanged from a
// co-located table's key, the proxy runs the query itself (routed and merged as any SELECT), and inserts its rows on
// the shards that own them — all-or-nothing, one command tag, RETURNING as PostgreSQL gives it. Never every row on
// every shard (PgDog #1096), never some shards only.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, userShard } from '../helpers/sharding.js';
import { errorOf, expectNothingPrepared } from '../helpers/write-atomicity.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let c: pg.Client;

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
name = "user_copies"
column = "user_id"
data_type = "bigint"
`;

/** Every id of `table` with the shard it is stored on (read on each shard directly). */
async function placement(table: string): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (const [shard, d] of direct.entries()) {
    for (const r of (await d.query<{ id: string }>(`select id from ${table}`)).rows) {
      const id = Number(r.id);
      out.set(id, [...(out.get(id) ?? []), shard]);
    }
  }
  return out;
}

/** Each id in `ids` is stored exactly once, on the shard that owns it. */
async function expectPlaced(table: string, ids: readonly number[]): Promise<void> {
  const where = await placement(table);
  for (const id of ids) expect({ id, shards: where.get(id) }).toEqual({ id, shards: [userShard(id)] });
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    extraPgdog: SHARDING,
    general: 'two_phase_commit = true\ntwo_phase_commit_auto = true\ninstance_id = "tinsel"',
  });
  direct = await directShardClients(cluster);
  const setup = new pg.Client({ connectionString: proxy.url });
  await setup.connect();
  await setup.query(`
    create table users (id bigint primary key, name text, score int);
    create table orders (id serial, user_id bigint not null, item text);
    create table staging (id bigint, name text);
    create table report (id bigint, name text);
    create table user_copies (user_id bigint, name text);
    insert into staging select g, 'staged ' || g from generate_series(1, 20) g;
    insert into users (id, name, score) select g, 'user ' || g, g from generate_series(1, 10) g`);
  await setup.end();
  // Shard 1 only: a row whose name starts with 'boom' fails at COMMIT / PREPARE (deferred).
  await direct[1].query(`
    create function boom_guard() returns trigger language plpgsql as $$
    begin
      if new.name like 'boom%' then raise exception 'boom is not allowed' using errcode = 'P0001'; end if;
      return new;
    end $$;
    create constraint trigger boom_guard after insert on users deferrable initially deferred
      for each row execute function boom_guard()`);
  c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
});

afterEach(async () => {
  await expectNothingPrepared(direct);
});

afterAll(async () => {
  await c?.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('INSERT … SELECT into a sharded table, evaluated by the proxy', () => {
  it('inserts rows read from a copied table on the shards that own them (PgDog #1096: never on every shard)', async () => {
    const r = await c.query('insert into users (id, name) select id + 100, name from staging where id <= 8');
    expect(r.command).toBe('INSERT');
    expect(r.rowCount).toBe(8);
    await expectPlaced(
      'users',
      Array.from({ length: 8 }, (_, i) => 101 + i),
    );
  });

  it('reads sharded rows across shards (ORDER BY … LIMIT merged) and gives RETURNING back', async () => {
    const r = await c.query<{ id: string; name: string }>(
      'insert into users (id, name) select id + 1000, name from users where id <= 10 order by id desc limit 3 returning id, name',
    );
    expect(r.rowCount).toBe(3);
    expect(r.rows.map((row) => Number(row.id)).sort()).toEqual([1008, 1009, 1010]);
    expect(r.rows.find((row) => row.id === '1010')?.name).toBe('user 10');
    await expectPlaced('users', [1008, 1009, 1010]);
  });

  it('answers INSERT 0 0 with the RETURNING columns when the query returns no rows', async () => {
    const r = await c.query(
      'insert into users (id, name) select id, name from staging where false returning id, name',
    );
    expect(r.rowCount).toBe(0);
    expect(r.fields.map((f) => f.name)).toEqual(['id', 'name']);
  });

  it('converts values as INSERT … SELECT does in PostgreSQL (a numeric into an integer column rounds)', async () => {
    await c.query("insert into users (id, name, score) select 2001, 'rounded', 1.5");
    await c.query('insert into users (id, name, score) select 2002, $1, $2::numeric', ['param', '2.5']);
    const r = await c.query<{ id: string; score: number }>(
      'select id, score from users where id in (2001, 2002) order by id',
    );
    expect(r.rows.map((row) => row.score)).toEqual([2, 3]);
  });

  it('binds parameters of the query and of RETURNING, also for a named statement run twice', async () => {
    const first = await c.query<{ id: string; tag: string }>({
      name: 'copy_staged',
      text: 'insert into users (id, name) select id + $1, name from staging where id > $2 and id <= $2 + 2 returning id, $3::text as tag',
      values: [3000, 10, 'run'],
    });
    expect(first.rows.map((row) => [Number(row.id), row.tag]).sort()).toEqual([
      [3011, 'run'],
      [3012, 'run'],
    ]);
    const second = await c.query<{ id: string }>({
      name: 'copy_staged',
      text: 'insert into users (id, name) select id + $1, name from staging where id > $2 and id <= $2 + 2 returning id, $3::text as tag',
      values: [3000, 14, 'again'],
    });
    expect(second.rows.map((row) => Number(row.id)).sort()).toEqual([3015, 3016]);
    await expectPlaced('users', [3011, 3012, 3015, 3016]);
  });

  it('runs the INSERT’s WITH clause as part of the query, and ON CONFLICT on each shard', async () => {
    const r = await c.query(
      'with s as (select id + 4000 as id, name from staging where id <= 4) insert into users (id, name) select id, name from s',
    );
    expect(r.rowCount).toBe(4);
    const again = await c.query(
      'insert into users (id, name) select id + 4000, name from staging where id <= 6 on conflict (id) do nothing',
    );
    expect(again.rowCount).toBe(2);
    await expectPlaced('users', [4001, 4002, 4003, 4004, 4005, 4006]);
  });

  it('refuses a WITH clause that writes with 0A000, and the session goes on', async () => {
    const err = await errorOf(
      c.query(
        'with d as (delete from staging where id = 20 returning id, name) insert into users select id, name from d',
      ),
    );
    expect(err?.code).toBe('0A000');
    expect((await c.query('select count(*)::int as n from staging where id = 20')).rows[0].n).toBe(1);
  });

  it('gives the query’s own error as the statement’s, outside and inside a transaction', async () => {
    expect((await errorOf(c.query("insert into users (id, name) select 1 / 0, 'x'")))?.code).toBe('22012');
    await c.query('begin');
    expect((await errorOf(c.query("insert into users (id, name) select 1 / 0, 'x'")))?.code).toBe('22012');
    expect((await errorOf(c.query('select 1')))?.code).toBe('25P02');
    await c.query('rollback');
    expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
  });

  it('inside BEGIN, reads the transaction’s own writes and commits or rolls back with it', async () => {
    await c.query('begin');
    await c.query("insert into staging values (5001, 'in tx'), (5002, 'in tx')");
    const r = await c.query('insert into users (id, name) select id, name from staging where id > 5000');
    expect(r.rowCount).toBe(2);
    await c.query('rollback');
    expect((await placement('users')).has(5001)).toBe(false);
    await c.query('begin');
    await c.query("insert into staging values (5003, 'in tx'), (5004, 'in tx')");
    await c.query('insert into users (id, name) select id, name from staging where id in (5003, 5004)');
    await c.query('commit');
    await expectPlaced('users', [5003, 5004]);
  });

  it('is all-or-nothing: a deferred failure on shard 1 at COMMIT leaves nothing on shard 0', async () => {
    const ids = [6001, 6002, 6003, 6004, 6005, 6006];
    expect(new Set(ids.map((id) => userShard(id))).size).toBe(2);
    const err = await errorOf(
      c.query(`insert into users (id, name) select id, 'boom ' || id from unnest($1::bigint[]) as id`, [ids]),
    );
    expect(err?.code).toBe('P0001');
    const where = await placement('users');
    expect(ids.filter((id) => where.has(id))).toEqual([]);
  });

  it('runs inside a multi-statement Query (one implicit transaction)', async () => {
    const r = await c.query(
      "insert into staging values (7001, 'multi'); insert into users (id, name) select id, name from staging where id = 7001",
    );
    expect(Array.isArray(r) ? r.map((x) => x.rowCount) : []).toEqual([1, 1]);
    await expectPlaced('users', [7001]);
  });
});

describe('INSERT … SELECT between co-located tables, and into copied tables', () => {
  it('runs on each shard when the key comes unchanged from a co-located table (each shard copies its own rows)', async () => {
    const r = await c.query(
      'insert into user_copies (user_id, name) select id, name from users where id <= 10',
    );
    expect(r.rowCount).toBe(10);
    let total = 0;
    for (const [shard, d] of direct.entries()) {
      const rows = (await d.query<{ user_id: string }>('select user_id from user_copies')).rows;
      total += rows.length;
      for (const row of rows) expect(userShard(Number(row.user_id))).toBe(shard);
    }
    expect(total).toBe(10);
  });

  it('fills a left-out serial column from the sequence of record, unique across shards', async () => {
    await c.query("insert into orders (user_id, item) select id, 'second' from users where id <= 10");
    const ids: number[] = [];
    for (const d of direct)
      ids.push(
        ...(await d.query<{ id: number }>("select id from orders where item = 'second'")).rows.map(
          (r) => r.id,
        ),
      );
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
  });

  it('writes sharded rows into a copied table: every shard gets all of them', async () => {
    const r = await c.query('insert into report (id, name) select id, name from users where id <= 10');
    expect(r.rowCount).toBe(10);
    for (const d of direct) {
      expect((await d.query('select count(*)::int as n from report')).rows[0].n).toBe(10);
    }
  });
});

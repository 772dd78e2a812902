// Multi-row INSERTs whose rows belong to several shards: split into one INSERT per shard (simple and extended
// protocol, named statements reused), every row on the shard PostgreSQL's hash picks, RETURNING rows in VALUES order,
// one summed command tag.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let client: pg.Client;

/** Ids from `start` alternating between shards 0 and 1, so every split really has rows for both. */
function mixedIds(start: number, count: number): number[] {
  const out: number[] = [];
  for (let id = start; out.length < count; id++) {
    if (userShard(id) === out.length % 2) out.push(id);
  }
  return out;
}

async function shardOfRow(id: number): Promise<number[]> {
  const found: number[] = [];
  for (const [shard, d] of direct.entries()) {
    if ((await d.query('select 1 from users where id = $1', [id])).rowCount === 1) found.push(shard);
  }
  return found;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    extraPgdog:
      USERS_SHARDING_TOML +
      ['accounts', 'ghosts']
        .map(
          (t) => `[[sharded_tables]]\ndatabase = "app"\nname = "${t}"\ncolumn = "id"\ndata_type = "bigint"\n`,
        )
        .join('\n'),
  });
  direct = await directShardClients(cluster);
  client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
});

afterAll(async () => {
  await client?.end();
  for (const d of direct ?? []) await d.end();
  await proxy?.close();
  await cluster?.stop();
});

describe('multi-row INSERT across shards', () => {
  it('splits a literal INSERT (simple protocol), RETURNING in VALUES order', async () => {
    const ids = mixedIds(1, 6);
    const values = ids.map((id) => `(${id}, 'n${id}')`).join(', ');
    const r = await client.query(`insert into users (id, name) values ${values} returning id, name`);
    expect(r.command).toBe('INSERT');
    expect(r.rowCount).toBe(6);
    expect(r.rows.map((row: { id: string }) => Number(row.id))).toEqual(ids);
    for (const id of ids) expect(await shardOfRow(id)).toEqual([userShard(id)]);
  });

  it('splits a parameterized INSERT with renumbered parameters, and again when the named statement is reused', async () => {
    const text = 'insert into users (id, name) values ($1, $2), ($3, $4), ($5, $6) returning id, name';
    for (const start of [1000, 2000]) {
      const ids = mixedIds(start, 3);
      const params = ids.flatMap((id) => [id, `p${id}`]);
      const r = await client.query({ name: 'split_ins', text, values: params });
      expect(r.rowCount).toBe(3);
      expect(r.rows).toEqual(ids.map((id) => ({ id: String(id), name: `p${id}` })));
      for (const id of ids) expect(await shardOfRow(id)).toEqual([userShard(id)]);
    }
  });

  it('reports a constraint violation on one shard and leaves the connection usable', async () => {
    const [a, b] = mixedIds(1, 2); // both already exist
    await expect(
      client.query(`insert into users (id, name) values (${a}, 'x'), (${b}, 'y')`),
    ).rejects.toMatchObject({
      code: '23505',
    });
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
  });

  it('is atomic inside a transaction: ROLLBACK removes the rows from every shard', async () => {
    const ids = mixedIds(5000, 4);
    await client.query('begin');
    await client.query(`insert into users (id, name) values ${ids.map((id) => `(${id}, 't')`).join(', ')}`);
    await client.query('rollback');
    for (const id of ids) expect(await shardOfRow(id)).toEqual([]);
  });
});

describe('OFFSET across shards (pushed down as LIMIT limit + offset, skipped after the merge)', () => {
  const all = async (): Promise<number[]> =>
    (await client.query('select id from users order by id')).rows.map((r: { id: string }) => Number(r.id));

  it('matches the ordered rows a single server would return, simple and extended, named statement reused', async () => {
    const ids = await all();
    expect(ids.length).toBeGreaterThan(8);
    const simple = await client.query('select id from users order by id limit 3 offset 4');
    expect(simple.rows.map((r: { id: string }) => Number(r.id))).toEqual(ids.slice(4, 7));
    for (const [limit, offset] of [
      [2, 1],
      [5, 3],
    ]) {
      const r = await client.query({
        name: 'page',
        text: 'select id, name from users order by id desc limit $1 offset $2',
        values: [limit, offset],
      });
      expect(r.rows.map((row: { id: string }) => Number(row.id))).toEqual(
        [...ids].reverse().slice(offset, offset + limit),
      );
    }
    const tail = await client.query('select id from users order by id offset $1', [ids.length - 2]);
    expect(tail.rows.map((r: { id: string }) => Number(r.id))).toEqual(ids.slice(-2));
  });
});

describe('atomicity of multi-shard writes (regressions found by the differential suite)', () => {
  it('a split INSERT outside a transaction that fails on one shard writes nothing on any shard', async () => {
    const [fresh0, fresh1] = mixedIds(9000, 2);
    const [existing] = mixedIds(1, 2).filter((id) => userShard(id) === 1); // already inserted above
    await expect(
      client.query(
        `insert into users (id, name) values (${fresh0}, 'a'), (${existing}, 'dup'), (${fresh1}, 'b')`,
      ),
    ).rejects.toMatchObject({ code: '23505' });
    for (const id of [fresh0, fresh1]) expect(await shardOfRow(id)).toEqual([]);
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
  });

  it('COMMIT of a transaction that failed on one shard rolls back every shard, as PostgreSQL answers ROLLBACK', async () => {
    const [fresh0] = mixedIds(9100, 1);
    const [existing] = mixedIds(1, 2).filter((id) => userShard(id) === 1);
    await client.query('begin');
    await client.query(`insert into users (id, name) values (${fresh0}, 'tx')`);
    await expect(
      client.query(`insert into users (id, name) values (${existing}, 'dup')`),
    ).rejects.toMatchObject({
      code: '23505',
    });
    await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    const end = await client.query('commit');
    expect(end.command).toBe('ROLLBACK');
    expect(await shardOfRow(fresh0)).toEqual([]);
  });

  it('a keyless UPDATE that fails on one shard changes no shard', async () => {
    const before = (await client.query('select id, name from users order by id')).rows;
    await expect(
      client.query("update users set name = name || 'x' where 1 / (id - $1) > -1000000", [before[0].id]),
    ).rejects.toMatchObject({
      code: '22012',
    });
    expect((await client.query('select id, name from users order by id')).rows).toEqual(before);
  });
});

describe('writes on several shards from concurrent transactions (regression: distributed deadlock)', () => {
  it('two clients updating the same copied row in transactions never deadlock across shards', async () => {
    await client.query('create table counters (name text primary key, n int not null)');
    await client.query("insert into counters (name, n) values ('hits', 0)");
    const other = new pg.Client({ connectionString: proxy.url });
    await other.connect();
    try {
      const worker = async (c: pg.Client): Promise<void> => {
        for (let i = 0; i < 25; i++) {
          await c.query('begin');
          await c.query("update counters set n = n + 1 where name = 'hits'");
          await c.query("update counters set n = n + 1 where name = 'hits'");
          await c.query('commit');
        }
      };
      // Sent to both shards at once, the two transactions' locks could be taken in opposite orders: a cycle neither
      // PostgreSQL sees. In shard order they just queue.
      await Promise.race([
        Promise.all([worker(client), worker(other)]),
        new Promise((_, reject) => setTimeout(() => reject(new Error('deadlocked across shards')), 15_000)),
      ]);
    } finally {
      await other.end();
    }
    for (const d of direct) {
      expect((await d.query("select n from counters where name = 'hits'")).rows[0].n).toBe(100);
    }
  }, 30_000);
});

describe('INSERT without a column list into a sharded table', () => {
  it('learns the column order from a shard and routes (one row, split rows, extended protocol)', async () => {
    await client.query('create table accounts (note text, id bigint primary key, owner text)');
    const [a, b, c] = mixedIds(900_000, 3);
    const one = await client.query(`insert into accounts values ('first', ${a}, 'x') returning id`);
    expect(one.rows).toEqual([{ id: String(a) }]);
    const split = await client.query('insert into accounts values ($1, $2, $3), ($4, $5, $6)', [
      's',
      b,
      'y',
      't',
      c,
      'z',
    ]);
    expect(split.rowCount).toBe(2);
    for (const [shard, d] of direct.entries()) {
      const ids = (await d.query<{ id: string }>('select id from accounts order by id')).rows.map((r) =>
        Number(r.id),
      );
      expect(ids.every((id) => userShard(id) === shard)).toBe(true);
    }
    expect(Number((await client.query('select count(*) as n from accounts')).rows[0].n)).toBe(3);
  });

  it('learns the order again after DDL changes it', async () => {
    await client.query('alter table accounts drop column note');
    const [d] = mixedIds(910_000, 1);
    await client.query(`insert into accounts values (${d}, 'after ddl')`);
    expect((await client.query('select owner from accounts where id = $1', [d])).rows).toEqual([
      { owner: 'after ddl' },
    ]);
    expect(await shardOfRow2('accounts', d)).toEqual([userShard(d)]);
  });

  it('answers a sharded table that does not exist with PostgreSQL’s own 42P01', async () => {
    await expect(client.query("insert into ghosts values (1, 'x')")).rejects.toMatchObject({
      code: '42P01',
      message: 'relation "ghosts" does not exist',
    });
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
  });
});

async function shardOfRow2(table: string, id: number): Promise<number[]> {
  const found: number[] = [];
  for (const [shard, d] of direct.entries()) {
    if ((await d.query(`select 1 from ${table} where id = $1`, [id])).rowCount === 1) found.push(shard);
  }
  return found;
}

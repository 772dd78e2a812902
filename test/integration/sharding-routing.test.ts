// Routing through shardgate over 2 shards (users hashed by id, countries omnisharded), checked against what each
// PostgreSQL server holds: DDL on every shard, keyed writes/reads on the shard PostgreSQL's hash picks, fan-out reads
// merged (count, ORDER BY, LIMIT, IN lists, min/max/sum), keyless writes with summed counts, omnisharded and catalog
// reads answered once, transactions spanning shards (commit and rollback), errors that leave the connection usable,
// manual routing (comment and SET shardgate.shard), and postgres.js with prepared statements.
// The tests run in order and share the users table: each one states the rows it expects.
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { directShardClients, USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';
import { firstError, frame } from '../helpers/raw-client.js';
import { EXECUTE_FRAME, parseFrame, rawSession, SYNC_FRAME } from '../helpers/write-atomicity.js';

vi.setConfig({ testTimeout: 10_000 });

const SHARDS = 2;
/** 200 ids inserted with the extended protocol ($1, $2): -1287 … 1300 by 13, so 0 and negatives too. */
const EXTENDED_IDS = Array.from({ length: 200 }, (_, i) => (i + 1) * 13 - 1300);
/** 50 ids inserted as SQL literals (simple protocol). */
const SIMPLE_IDS = Array.from({ length: 50 }, (_, i) => 100_000 + (i + 1) * 17);
const ALL_IDS = [...EXTENDED_IDS, ...SIMPLE_IDS];
const SORTED_IDS = [...ALL_IDS].sort((a, b) => a - b);

const nameOf = (id: number): string => `user ${id}`;

let cluster: PgCluster;
let proxy: TestProxy;
/** direct[s]: a client straight to shard s's server, bypassing the proxy. */
let direct: pg.Client[];
/** A client through the proxy, shared by the tests that run in order. */
let client: pg.Client;
const open: pg.Client[] = [];

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
    // A hung proxy fails the query (and the test) quickly instead of at the test timeout.
    query_timeout: 5_000,
  });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await promise;
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error('expected the query to fail, it succeeded');
}

/** users ids on shard `s`, read directly from its server, ascending. */
async function directIds(s: number, table = 'users'): Promise<number[]> {
  const res = await direct[s].query<{ id: string }>(`select id from ${table} order by id`);
  return res.rows.map((r) => Number(r.id));
}

async function directCount(s: number): Promise<number> {
  const res = await direct[s].query<{ n: number }>('select count(*)::int as n from users');
  return res.rows[0].n;
}

/** The first `count` ids from `from` upward whose shard is `shard`. */
function idsOnShard(shard: number, from: number, count = 1): number[] {
  const out: number[] = [];
  for (let id = from; out.length < count; id++) if (userShard(id) === shard) out.push(id);
  return out;
}

/** The connection answers a keyed read correctly and is not stuck in a failed transaction. */
async function expectUsable(c: pg.Client): Promise<void> {
  const id = EXTENDED_IDS[7];
  const res = await c.query<{ name: string }>('select upper(name) as name from users where id = $1', [id]);
  expect(res.rows).toEqual([{ name: nameOf(id).toUpperCase() }]);
  const plain = await c.query<{ one: number }>('select 1 as one');
  expect(plain.rows).toEqual([{ one: 1 }]);
}

beforeAll(async () => {
  cluster = await testServers(SHARDS, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
  direct = await directShardClients(cluster);
  client = await connect();
});

afterAll(async () => {
  await Promise.all([...open, ...(direct ?? [])].map((c) => c.end().catch(() => undefined)));
  await proxy?.close();
  await cluster?.stop();
});

describe('sharding: routing over 2 shards', () => {
  it('test ids are spread over both shards', () => {
    const perShard = [0, 0];
    for (const id of ALL_IDS) perShard[userShard(id)]++;
    expect(perShard[0]).toBeGreaterThan(50);
    expect(perShard[1]).toBeGreaterThan(50);
    expect(new Set(ALL_IDS).size).toBe(250);
  });

  it('DDL runs on every shard', async () => {
    await client.query('create table users (id bigint primary key, name text)');
    await client.query('create table countries (code text primary key)');
    for (const d of direct) {
      const res = await d.query<{ tablename: string }>(
        "select tablename from pg_tables where schemaname = 'public' order by tablename",
      );
      expect(res.rows.map((r) => r.tablename)).toEqual(['countries', 'users']);
    }
  });

  it('keyed INSERTs (extended and simple) land on the shard the hash picks, and only there', async () => {
    for (const id of EXTENDED_IDS) {
      const res = await client.query('insert into users (id, name) values ($1, $2)', [id, nameOf(id)]);
      expect(res.rowCount).toBe(1);
    }
    for (const id of SIMPLE_IDS) {
      const res = await client.query(`insert into users (id, name) values (${id}, '${nameOf(id)}')`);
      expect(res.rowCount).toBe(1);
    }
    for (let s = 0; s < SHARDS; s++) {
      const expected = SORTED_IDS.filter((id) => userShard(id) === s);
      expect(await directIds(s)).toEqual(expected);
      const names = await direct[s].query<{ id: string; name: string }>('select id, name from users');
      for (const row of names.rows) expect(row.name).toBe(nameOf(Number(row.id)));
    }
  });

  it('keyed SELECTs return the row from either shard', async () => {
    for (const id of ALL_IDS) {
      const res = await client.query<{ name: string }>('select name from users where id = $1', [id]);
      expect(res.rows, `id ${id} (shard ${userShard(id)})`).toEqual([{ name: nameOf(id) }]);
    }
    const literalIds = [
      EXTENDED_IDS.find((id) => userShard(id) === 0) as number,
      SIMPLE_IDS.find((id) => userShard(id) === 1) as number,
    ];
    for (const id of literalIds) {
      const res = await client.query<{ name: string }>(`select name from users where id = ${id}`);
      expect(res.rows, `literal id ${id}`).toEqual([{ name: nameOf(id) }]);
    }
  });

  it('fan-out SELECTs: count, ORDER BY (+ LIMIT), IN list across shards, min/max/sum', async () => {
    const count = await client.query<{ count: string }>('select count(*) from users');
    expect(count.rows).toEqual([{ count: '250' }]);

    const first10 = await client.query<{ id: string }>('select id from users order by id limit 10');
    expect(first10.rows.map((r) => Number(r.id))).toEqual(SORTED_IDS.slice(0, 10));

    const desc = await client.query<{ id: string }>('select id from users order by id desc');
    expect(desc.rows.map((r) => Number(r.id))).toEqual([...SORTED_IDS].reverse());

    const a = EXTENDED_IDS.find((id) => userShard(id) === 0) as number;
    const b = SIMPLE_IDS.find((id) => userShard(id) === 1) as number;
    const pair = await client.query<{ id: string; name: string }>(
      `select * from users where id in (${a}, ${b})`,
    );
    expect(pair.rows.map((r) => ({ id: Number(r.id), name: r.name })).sort((x, y) => x.id - y.id)).toEqual([
      { id: a, name: nameOf(a) },
      { id: b, name: nameOf(b) },
    ]);

    const agg = await client.query<{ min: string; max: string; sum: string }>(
      'select min(id), max(id), sum(id) from users',
    );
    const sum = ALL_IDS.reduce((acc, id) => acc + BigInt(id), 0n);
    expect(agg.rows).toEqual([
      { min: String(SORTED_IDS[0]), max: String(SORTED_IDS[SORTED_IDS.length - 1]), sum: sum.toString() },
    ]);
  });

  it('keyless UPDATE/DELETE run on every shard, row counts summed', async () => {
    const upd = await client.query('update users set name = upper(name)');
    expect(upd.command).toBe('UPDATE');
    expect(upd.rowCount).toBe(250);
    for (const d of direct) {
      const res = await d.query<{ n: number }>(
        'select count(*)::int as n from users where name <> upper(name)',
      );
      expect(res.rows[0].n).toBe(0);
    }
    const del = await client.query('delete from users where id > 1000000');
    expect(del.command).toBe('DELETE');
    expect(del.rowCount).toBe(0);
    expect((await directCount(0)) + (await directCount(1))).toBe(250);
  });

  it('omnisharded table: writes reach every shard, reads are answered once', async () => {
    await client.query("insert into countries values ('fr'), ('de')");
    for (let s = 0; s < SHARDS; s++) {
      const res = await direct[s].query<{ code: string }>('select code from countries order by code');
      expect(
        res.rows.map((r) => r.code),
        `shard ${s}`,
      ).toEqual(['de', 'fr']);
    }
    const count = await client.query<{ count: string }>('select count(*) from countries');
    expect(count.rows).toEqual([{ count: '2' }]);
  });

  it('catalog queries are answered by one shard', async () => {
    const tables = await client.query<{ count: string }>(
      "select count(*) from pg_tables where tablename = 'users'",
    );
    expect(tables.rows).toEqual([{ count: '1' }]);
    const version = await client.query<{ version: string }>('select version()');
    expect(version.rows).toHaveLength(1);
    expect(version.rows[0].version).toMatch(/^PostgreSQL /);
  });

  it('a transaction spanning both shards commits on both', async () => {
    const [a] = idsOnShard(0, 500_000);
    const [b] = idsOnShard(1, 500_000);
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'TX A']);
    await client.query(`insert into users (id, name) values (${b}, 'TX B')`);
    // Inside the transaction the client sees its own rows; nobody else does yet.
    const inside = await client.query<{ id: string }>(
      `select id from users where id in (${a}, ${b}) order by id`,
    );
    expect(inside.rows.map((r) => Number(r.id))).toEqual([a, b].sort((x, y) => x - y));
    expect((await direct[0].query('select 1 from users where id = $1', [a])).rowCount).toBe(0);
    expect((await direct[1].query('select 1 from users where id = $1', [b])).rowCount).toBe(0);
    await client.query('commit');
    expect((await direct[0].query('select name from users where id = $1', [a])).rows).toEqual([
      { name: 'TX A' },
    ]);
    expect((await direct[1].query('select name from users where id = $1', [b])).rows).toEqual([
      { name: 'TX B' },
    ]);
    const after = await client.query<{ count: string }>(
      `select count(*) from users where id in (${a}, ${b})`,
    );
    expect(after.rows).toEqual([{ count: '2' }]);
  });

  it('a transaction spanning both shards rolls back on both', async () => {
    const [a] = idsOnShard(0, 600_000);
    const [b] = idsOnShard(1, 600_000);
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'RB A']);
    await client.query('insert into users (id, name) values ($1, $2)', [b, 'RB B']);
    await client.query('rollback');
    for (const d of direct) {
      const res = await d.query('select id from users where id = any($1::bigint[])', [[a, b]]);
      expect(res.rowCount).toBe(0);
    }
    const through = await client.query<{ count: string }>(
      `select count(*) from users where id in (${a}, ${b})`,
    );
    expect(through.rows).toEqual([{ count: '0' }]);
  });

  describe('errors leave the connection usable', () => {
    it('a multi-row INSERT spanning shards is split by shard (simple and extended); rolled back, nothing stays', async () => {
      const [a] = idsOnShard(0, 700_000);
      const [b] = idsOnShard(1, 700_000);
      await client.query('begin');
      const simple = await client.query(`insert into users (id, name) values (${a}, 'x'), (${b}, 'y')`);
      expect(simple.rowCount).toBe(2);
      expect((await direct[0].query('select 1 from users where id = $1', [a])).rowCount).toBe(0); // not committed
      const seen = await client.query('select id from users where id = any($1::bigint[]) order by id', [
        [a, b],
      ]);
      expect(seen.rows.map((r: { id: string }) => Number(r.id))).toEqual([a, b].sort((x, y) => x - y));
      await client.query('rollback');
      const extended = await client.query(
        "insert into users (id, name) values ($1, 'x'), ($2, 'y') returning id",
        [a, b],
      );
      expect(extended.rows.map((r: { id: string }) => Number(r.id))).toEqual([a, b]);
      expect((await direct[0].query('select 1 from users where id = $1', [a])).rowCount).toBe(1);
      expect((await direct[1].query('select 1 from users where id = $1', [b])).rowCount).toBe(1);
      await client.query('delete from users where id = any($1::bigint[])', [[a, b]]);
      for (const d of direct) {
        expect((await d.query('select 1 from users where id = any($1::bigint[])', [[a, b]])).rowCount).toBe(
          0,
        );
      }
      await expectUsable(client);
    });

    it('a malformed Bind is 08P01 as PostgreSQL answers it (was XX000), and the session goes on', async () => {
      const raw = await rawSession(proxy.port);
      try {
        // One parameter announced, its length word cut short.
        const bad = frame('B', Buffer.concat([Buffer.from('\0\0\0\0'), Buffer.from([0, 1, 0, 0, 0])]));
        raw.write(
          Buffer.concat([
            parseFrame('', 'select name from users where id = $1'),
            bad,
            EXECUTE_FRAME,
            SYNC_FRAME,
          ]),
        );
        const replies = await raw.readUntil('Z');
        expect(firstError(replies)).toMatchObject({
          S: 'ERROR',
          C: '08P01',
          M: 'insufficient data left in message',
        });
        const ok = await raw.query('select 1 as one');
        expect(ok.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });

    it('a Parse cut short after its query is 08P01 as PostgreSQL answers it (was a RangeError), and the session goes on', async () => {
      const raw = await rawSession(proxy.port);
      try {
        // Statement name and query, then no parameter count.
        const bad = frame('P', Buffer.from('\0select name from users where id = 1\0', 'latin1'));
        raw.write(Buffer.concat([bad, SYNC_FRAME]));
        const replies = await raw.readUntil('Z');
        expect(firstError(replies)).toMatchObject({
          S: 'ERROR',
          C: '08P01',
          M: 'insufficient data left in message',
        });
        const ok = await raw.query('select 1 as one');
        expect(ok.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });

    it('a Query or Parse without its terminating NUL is ERROR 08P01 "invalid string in message" as PostgreSQL answers it (was FATAL), and the session goes on', async () => {
      const raw = await rawSession(proxy.port);
      try {
        raw.write(frame('Q', Buffer.from('select name from users where id = 1', 'latin1')));
        expect(firstError(await raw.readUntil('Z'))).toMatchObject({
          S: 'ERROR',
          C: '08P01',
          M: 'invalid string in message',
        });
        raw.write(Buffer.concat([frame('P', Buffer.from('\0select name from users', 'latin1')), SYNC_FRAME]));
        expect(firstError(await raw.readUntil('Z'))).toMatchObject({
          S: 'ERROR',
          C: '08P01',
          M: 'invalid string in message',
        });
        const ok = await raw.query('select 1 as one');
        expect(ok.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });

    it("a sharding key that is not a bigint ('abc') is 22P02", async () => {
      const err = await rejection(client.query("select * from users where id = 'abc'"));
      expect(err.code).toBe('22P02');
      await expectUsable(client);
    });

    it('an UPDATE that may move a row to another shard is 0A000, the row unchanged', async () => {
      const before = await client.query<{ count: string }>('select count(*) from users where id = 5');
      const err = await rejection(client.query('update users set id = id + 1 where id = 5'));
      expect(err.code).toBe('0A000');
      await expectUsable(client);
      const after = await client.query<{ count: string }>('select count(*) from users where id = 5');
      expect(after.rows).toEqual(before.rows);
    });

    it('a syntax error is 42601 (simple and extended)', async () => {
      const simple = await rejection(client.query('selec id from users'));
      expect(simple.code).toBe('42601');
      await expectUsable(client);
      const extended = await rejection(client.query('selec id from users where id = $1', [1]));
      expect(extended.code).toBe('42601');
      await expectUsable(client);
    });

    it("a unique violation on one shard is 23505 with PostgreSQL's own detail, passed through intact", async () => {
      for (const shard of [0, 1]) {
        const id = EXTENDED_IDS.find((x) => userShard(x) === shard) as number;
        const err = await rejection(
          client.query('insert into users (id, name) values ($1, $2)', [id, 'dup']),
        );
        expect(err.code, `id ${id}`).toBe('23505');
        expect(err.detail, `id ${id}`).toBe(`Key (id)=(${id}) already exists.`);
        await expectUsable(client);
      }
    });

    it('an error from a fan-out statement names the shard it came from', async () => {
      const err = await rejection(client.query('select 1 / (id - id) from users'));
      expect(err.code).toBe('22012');
      expect(err.detail).toMatch(/shard [01]\b/);
      await expectUsable(client);
    });
  });

  it('manual routing: /* shardgate: shard=N */ comment and SET/RESET shardgate.shard', async () => {
    const [n0, n1] = [await directCount(0), await directCount(1)];
    expect(n0).not.toBe(n1); // otherwise the counts below could not tell the shards apart
    const total = n0 + n1;

    const viaComment = await client.query<{ count: string }>(
      '/* shardgate: shard=1 */ select count(*) from users',
    );
    expect(viaComment.rows).toEqual([{ count: String(n1) }]);
    const viaComment0 = await client.query<{ count: string }>(
      '/* shardgate: shard=0 */ select count(*) from users',
    );
    expect(viaComment0.rows).toEqual([{ count: String(n0) }]);

    await client.query('SET shardgate.shard TO 0');
    const pinned = await client.query<{ count: string }>('select count(*) from users');
    expect(pinned.rows).toEqual([{ count: String(n0) }]);
    const pinnedExtended = await client.query<{ count: string }>(
      'select count(*) from users where id > $1',
      [-1_000_000],
    );
    expect(pinnedExtended.rows).toEqual([{ count: String(n0) }]);

    await client.query('RESET shardgate.shard');
    const fanOut = await client.query<{ count: string }>('select count(*) from users');
    expect(fanOut.rows).toEqual([{ count: String(total) }]);
  });

  it('postgres.js (prepared statements): keyed INSERT/SELECT and ordered fan-out SELECT', async () => {
    const sql = postgres(proxy.url, {
      prepare: true,
      max: 2,
      onnotice: () => undefined,
      connect_timeout: 10,
    });
    try {
      const ids = Array.from({ length: 30 }, (_, i) => 200_000 + (i + 1) * 31);
      expect(new Set(ids.map((id) => userShard(id))).size).toBe(2);
      for (const id of ids) {
        const res = await sql`insert into users (id, name) values (${id}, ${`pjs ${id}`})`;
        expect(res.count).toBe(1);
      }
      for (const id of ids) {
        const s = userShard(id);
        expect((await direct[s].query('select 1 from users where id = $1', [id])).rowCount, `id ${id}`).toBe(
          1,
        );
        expect(
          (await direct[1 - s].query('select 1 from users where id = $1', [id])).rowCount,
          `id ${id}`,
        ).toBe(0);
      }
      for (const id of ids) {
        const rows = await sql<{ name: string }[]>`select name from users where id = ${id}`;
        expect([...rows], `id ${id}`).toEqual([{ name: `pjs ${id}` }]);
      }

      const everything = [...(await directIds(0)), ...(await directIds(1))].sort((a, b) => a - b);
      const ordered = await sql<{ id: string }[]>`select id from users order by id`;
      expect(ordered.map((r) => Number(r.id))).toEqual(everything);
      const top = await sql<{ id: string }[]>`select id from users order by id desc limit ${5}`;
      expect(top.map((r) => Number(r.id))).toEqual(everything.slice(-5).reverse());
      const [count] = await sql<{ count: string }[]>`select count(*) from users`;
      expect(count.count).toBe(String(everything.length));
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});

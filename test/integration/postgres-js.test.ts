// postgres.js through shardgate: simple and prepared queries, sql.begin, typed round-trips, COPY both ways,
// cancel, error fields, and a pool of 20 client connections over a proxy pool of 5 — in transaction and session mode.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { backendsOf, superuserClient } from '../helpers/clients/direct.js';

/** A login with its own proxy pool (pool_size = 5), so the server can count that pool's connections. */
const MANY_USER = { name: 'many', password: 'many-secret' };
const MANY_POOL_SIZE = 5;
const COPY_ROWS = 100_000;

let cluster: PgCluster;
let txProxy: TestProxy;
let sessionProxy: TestProxy;
let pool5Proxy: TestProxy;
const sqls: { end(options?: { timeout?: number }): Promise<void> }[] = [];

function sqlFor(url: string, max = 4): postgres.Sql {
  const sql = postgres(url, { max, onnotice: () => undefined, connect_timeout: 10 });
  sqls.push(sql);
  return sql;
}

/** Like sqlFor, with int8 as bigint both ways. */
function bigintSqlFor(url: string): postgres.Sql<{ bigint: bigint }> {
  const sql = postgres(url, {
    max: 4,
    onnotice: () => undefined,
    connect_timeout: 10,
    types: { bigint: postgres.BigInt },
  });
  sqls.push(sql);
  return sql;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<postgres.PostgresError> {
  try {
    await promise;
  } catch (err) {
    return err as postgres.PostgresError;
  }
  throw new Error('expected the query to fail, it succeeded');
}

/** `promise`, or a rejection naming `what` after `ms` (a hung proxy fails the test quickly and says where). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

beforeAll(async () => {
  cluster = await testServers(1, { ...APP_SERVER_OPTIONS, users: [...APP_SERVER_OPTIONS.users, MANY_USER] });
  [txProxy, sessionProxy, pool5Proxy] = await Promise.all([
    startTestProxy(cluster),
    startTestProxy(cluster, { general: 'pooler_mode = "session"' }),
    startTestProxy(cluster, {
      moreUsers: `[[users]]\nname = "${MANY_USER.name}"\ndatabase = "${APP_DB}"\npassword = "${MANY_USER.password}"\npool_size = ${MANY_POOL_SIZE}\n`,
    }),
  ]);
  const sql = sqlFor(txProxy.url);
  await sql.unsafe(
    'CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);' +
      'CREATE TABLE copy_tx (id int, name text); CREATE TABLE copy_session (id int, name text);' +
      `CREATE TABLE many_t (k int NOT NULL, v int NOT NULL); GRANT ALL ON many_t TO ${MANY_USER.name};`,
  );
});

afterAll(async () => {
  await Promise.all(sqls.map((s) => s.end({ timeout: 1 })));
  await Promise.all([txProxy, sessionProxy, pool5Proxy].map((p) => p?.close()));
  await cluster?.stop();
});

const MODES = [
  ['transaction', () => txProxy],
  ['session', () => sessionProxy],
] as const;

describe.each(MODES)('%s mode', (mode, proxyOf) => {
  let sql: postgres.Sql<{ bigint: bigint }>;
  beforeAll(() => {
    sql = bigintSqlFor(proxyOf().url);
  });

  it('runs simple-protocol queries (sql.unsafe), several statements in one', async () => {
    const rows = await sql.unsafe('SELECT 1 AS one, current_user AS who');
    expect([...rows]).toEqual([{ one: 1, who: 'app' }]);
    const multi = (await sql.unsafe(
      "SELECT 'a' AS x; SELECT generate_series(1, 3) AS n",
    )) as unknown as postgres.RowList<postgres.Row[]>[];
    expect(multi).toHaveLength(2);
    expect([...multi[0]]).toEqual([{ x: 'a' }]);
    expect(multi[1].map((r) => r.n)).toEqual([1, 2, 3]);
  });

  it('runs prepared (extended) queries, repeatedly and with many distinct texts', async () => {
    for (let i = 0; i < 30; i++) {
      const [row] = await sql`SELECT ${i}::int * 3 AS v, ${'x' + i}::text AS s`;
      expect(row).toEqual({ v: i * 3, s: `x${i}` });
    }
    // Distinct texts, run concurrently over the client's 4 connections.
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        sql.unsafe(`SELECT $1::int + ${i} AS v`, [1000], { prepare: true }),
      ),
    );
    expect(results.map((r) => r[0].v)).toEqual(Array.from({ length: 40 }, (_, i) => 1000 + i));
  });

  it('answers a simple Query and a prepared statement pipelined on one connection', async () => {
    // max: 1 makes postgres.js write Query + Parse/Describe/Flush in one go, before the Query's ReadyForQuery.
    const one = postgres(proxyOf().url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
    try {
      await one`SELECT 1`; // connection set up (type fetch) before the pipelined burst
      for (let round = 0; round < 3; round++) {
        const [a, b, c] = await within(
          Promise.all([
            one.unsafe(`SELECT ${round} AS a`),
            one`SELECT ${round}::int + 100 AS b`,
            one.unsafe(`SELECT ${round} + 200 AS c`),
          ]),
          3_000,
          `pipelined round ${round}`,
        );
        expect([a[0], b[0], c[0]]).toEqual([{ a: round }, { b: round + 100 }, { c: round + 200 }]);
      }
    } finally {
      await one.end({ timeout: 1 });
    }
  });

  it('commits sql.begin and rolls it back when the callback throws', async () => {
    const base = mode === 'transaction' ? 1000 : 2000;
    const inside = await sql.begin(async (tx) => {
      await tx`INSERT INTO items VALUES (${base + 1}, 'one'), (${base + 2}, 'two')`;
      const [{ n }] =
        await tx`SELECT count(*)::int AS n FROM items WHERE id > ${base} AND id < ${base + 1000}`;
      return n as number;
    });
    expect(inside).toBe(2);
    const boom = new Error('rollback please');
    await expect(
      sql.begin(async (tx) => {
        await tx`INSERT INTO items VALUES (${base + 3}, 'three')`;
        await tx`UPDATE items SET name = 'changed' WHERE id = ${base + 1}`;
        throw boom;
      }),
    ).rejects.toBe(boom);
    const rows = await sql`SELECT id, name FROM items WHERE id > ${base} AND id < ${base + 1000} ORDER BY id`;
    expect([...rows]).toEqual([
      { id: base + 1, name: 'one' },
      { id: base + 2, name: 'two' },
    ]);
  });

  it('round-trips int8, text, bytea, json, arrays and timestamptz', async () => {
    const big = 9_007_199_254_740_993n;
    const bytes = Buffer.from([0, 1, 2, 0xff, 0x5c, 0x27, 0]);
    const doc = { a: [1, 'x', null], b: { c: true, d: 'ünï ✓' } };
    const when = new Date('2024-02-29T12:34:56.789Z');
    const texts = ['a,b', 'with "quote"', 'back\\slash', '', '{brace}'];
    const [row] = await sql`
      SELECT ${big}::int8 + 1 AS big, ${'héllo wörld ✓ \u0001'}::text AS t, ${bytes}::bytea AS bytes,
             ${sql.json(doc)}::jsonb AS doc, ${sql.array([1, 2, 3])}::int4[] AS ints, ${sql.array(texts)}::text[] AS texts,
             ${when}::timestamptz AS at, ${when}::timestamptz + interval '1 day' AS later, ${null}::text AS nothing`;
    expect(row.big).toBe(big + 1n);
    expect(row.t).toBe('héllo wörld ✓ \u0001');
    expect(Buffer.isBuffer(row.bytes)).toBe(true);
    expect(Buffer.compare(row.bytes as Buffer, bytes)).toBe(0);
    expect(row.doc).toEqual(doc);
    expect(row.ints).toEqual([1, 2, 3]);
    expect(row.texts).toEqual(texts);
    expect((row.at as Date).toISOString()).toBe(when.toISOString());
    expect((row.later as Date).getTime() - when.getTime()).toBe(86_400_000);
    expect(row.nothing).toBeNull();
  });

  it(`copies ${COPY_ROWS} rows in with a writable stream and all of them back out`, async () => {
    const table = mode === 'transaction' ? 'copy_tx' : 'copy_session';
    const line = (i: number): string => `${i}\tname ${i} ✓\n`;
    function* chunks(): Generator<string> {
      for (let i = 0; i < COPY_ROWS; i += 1000) {
        let s = '';
        for (let j = i; j < i + 1000; j++) s += line(j);
        yield s;
      }
    }
    // A client of its own: postgres.js leaves a connection that ran COPY TO STDOUT unable to run the next
    // extended-protocol query (it hangs against plain PostgreSQL too), so that connection is not reused.
    const copySql = postgres(proxyOf().url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
    try {
      const writable = await copySql.unsafe(`COPY ${table} (id, name) FROM STDIN`).writable();
      await pipeline(Readable.from(chunks()), writable);
      const [{ n, s }] = await sql.unsafe(`SELECT count(*)::int AS n, sum(id)::int8 AS s FROM ${table}`);
      expect(n).toBe(COPY_ROWS);
      expect(s).toBe(BigInt((COPY_ROWS * (COPY_ROWS - 1)) / 2));

      const readable = await copySql
        .unsafe(`COPY (SELECT id, name FROM ${table} ORDER BY id) TO STDOUT`)
        .readable();
      const parts: Buffer[] = [];
      for await (const chunk of readable) parts.push(chunk as Buffer);
      const out = Buffer.concat(parts).toString('utf8');
      let expected = '';
      for (const c of chunks()) expected += c;
      expect(out.length).toBe(expected.length);
      expect(out === expected).toBe(true);
    } finally {
      await copySql.end({ timeout: 1 });
    }
    // Server connections that ran both copies go back to the pool in a usable state.
    const after = await Promise.all(Array.from({ length: 8 }, (_, i) => sql`SELECT ${i}::int AS i`));
    expect(after.map((r) => r[0].i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  }, 60_000);

  it('cancels a running pg_sleep(10) within 1 s with 57014', async () => {
    const started = Date.now();
    const q = sql`SELECT pg_sleep(10)`;
    setTimeout(() => q.cancel(), 200);
    const err = await rejection(q);
    expect(err.code).toBe('57014');
    expect(err.message).toBe('canceling statement due to user request');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect([...(await sql`SELECT 7 AS seven`)]).toEqual([{ seven: 7 }]);
  });

  it("keeps an error's fields (code, message, detail, hint, constraint) intact", async () => {
    const div = await rejection(sql`SELECT 1/0`);
    expect(div).toBeInstanceOf(postgres.PostgresError);
    expect([div.code, div.message, div.severity]).toEqual(['22012', 'division by zero', 'ERROR']);

    const raised = await rejection(
      sql.unsafe(
        "DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 7 USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = 'P0042'; END $$",
      ),
    );
    expect([raised.code, raised.message, raised.detail, raised.hint]).toEqual([
      'P0042',
      'custom failure 7',
      'the detail',
      'the hint',
    ]);

    const id = mode === 'transaction' ? 5001 : 6001;
    await sql`INSERT INTO items VALUES (${id}, 'dup')`;
    const dup = await rejection(sql`INSERT INTO items VALUES (${id}, 'dup again')`);
    expect(dup.code).toBe('23505');
    expect(dup.detail).toBe(`Key (id)=(${id}) already exists.`);
    expect(dup.constraint_name).toBe('items_pkey');
    expect(dup.table_name).toBe('items');

    // An error inside sql.begin aborts and rolls back; the pool stays healthy.
    const inTx = await rejection(
      sql.begin(async (tx) => {
        await tx`INSERT INTO items VALUES (${id + 1}, 'gone')`;
        await tx`SELECT 1/0`;
      }),
    );
    expect(inTx.code).toBe('22012');
    expect([...(await sql`SELECT count(*)::int AS n FROM items WHERE id = ${id + 1}`)]).toEqual([{ n: 0 }]);
  });
});

describe('a postgres.js pool of 20 over a proxy pool of 5', () => {
  it('runs 600 concurrent queries and 40 concurrent transactions; the server sees at most 5 connections', async () => {
    const admin = await superuserClient(cluster.servers[0], APP_DB);
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await backendsOf(admin, MANY_USER.name));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const sql = sqlFor(
      `postgres://${MANY_USER.name}:${MANY_USER.password}@127.0.0.1:${pool5Proxy.port}/${APP_DB}`,
      20,
    );
    try {
      const queries = Array.from({ length: 600 }, (_, i) =>
        i % 3 === 0
          ? sql`SELECT ${i}::int * 2 AS v, pg_sleep(0.001)::text AS z`.then(
              (r) => r[0]?.v as number | undefined,
            )
          : i % 3 === 1
            ? sql.unsafe(`SELECT ${i} * 2 AS v`).then((r) => r[0]?.v as number | undefined)
            : sql`SELECT ${i}::int * 2 AS v`.then((r) => r[0]?.v as number | undefined),
      );
      const transactions = Array.from({ length: 40 }, (_, k) =>
        sql.begin(async (tx) => {
          await tx`INSERT INTO many_t VALUES (${k}, 1)`;
          await tx`INSERT INTO many_t VALUES (${k}, 2)`;
          const [{ n }] = await tx`SELECT count(*)::int AS n FROM many_t WHERE k = ${k}`;
          return n as number;
        }),
      );
      const values = await within(Promise.all(queries), 10_000, '600 concurrent queries');
      expect(values).toEqual(Array.from({ length: 600 }, (_, i) => i * 2));
      const counts = await within(Promise.all(transactions), 5_000, '40 concurrent transactions');
      expect(counts).toEqual(Array.from({ length: 40 }, () => 2));
    } finally {
      sampling = false;
      await sampler;
    }
    const total = await admin.query('SELECT count(*)::int AS n, count(DISTINCT k)::int AS c FROM many_t');
    await admin.end();
    expect(total.rows).toEqual([{ n: 80, c: 40 }]);
    expect(maxSeen).toBeGreaterThan(1);
    expect(maxSeen).toBeLessThanOrEqual(MANY_POOL_SIZE);
  }, 60_000);
});

// Streams and cursors on 2 shards through shardgate (2PC on) and on plain PostgreSQL: pg-query-stream (pg-cursor: a
// named portal, row-limited Execute + Flush, Close) and postgres.js `.cursor()` / `.forEach()` — across shards, pinned
// to one shard, inside a transaction, stopped early, and failing midway (the connection must go on either way).
import pg from 'pg';
import postgres from 'postgres';
import QueryStream from 'pg-query-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORDERS, USERS } from './dataset.js';
import { startOrmTargets, within, type OrmTarget, type OrmTargets } from './targets.js';

const STEP_MS = 10_000;
let targets: OrmTargets;

beforeAll(async () => {
  targets = await startOrmTargets();
  for (const t of [targets.shards, targets.plain]) {
    const c = new pg.Client({ connectionString: t.url });
    await c.connect();
    await c.query('create table users (id serial primary key, name text not null, score int not null)');
    await c.query('create table orders (id serial primary key, user_id int not null, amount int not null)');
    await c.query(
      `insert into users (id, name, score) values ${placeholders(USERS.length, 3)}`,
      USERS.flatMap((u) => [u.id, u.name, u.score]),
    );
    await c.query(
      `insert into orders (id, user_id, amount) values ${placeholders(ORDERS.length, 3)}`,
      ORDERS.flatMap((o) => [o.id, o.userId, o.amount]),
    );
    await c.end();
  }
});

afterAll(async () => {
  await targets?.stop();
});

/** `($1, $2, $3), ($4, …)`: `rows` rows of `columns` parameters. */
function placeholders(rows: number, columns: number): string {
  return Array.from(
    { length: rows },
    (_, r) => `(${Array.from({ length: columns }, (_, c) => `$${r * columns + c + 1}`).join(', ')})`,
  ).join(', ');
}

const orderIdsOf = (userId: number): number[] => ORDERS.filter((o) => o.userId === userId).map((o) => o.id);

describe.each(['shards', 'plain'] as const)('streams on %s', (name) => {
  let t: OrmTarget;
  let client: pg.Client;
  let sql: postgres.Sql;

  beforeAll(async () => {
    t = targets[name];
    client = new pg.Client({ connectionString: t.url });
    await client.connect();
    sql = postgres(t.url, { max: 2, onnotice: () => undefined });
  });

  afterAll(async () => {
    await client?.end();
    await sql?.end({ timeout: 5 });
  });

  const step = (title: string, fn: () => Promise<void>) => it(title, () => within(fn(), STEP_MS, title));

  /** All rows of `text` through pg-query-stream, `batchSize` rows per Execute. */
  async function streamed(text: string, values: unknown[], batchSize: number): Promise<number[]> {
    const ids: number[] = [];
    for await (const row of client.query(new QueryStream(text, values, { batchSize })))
      ids.push((row as { id: number }).id);
    return ids;
  }

  step('pg-query-stream: across shards, ORDER BY, 3 rows per fetch', async () => {
    expect(await streamed('select id from users order by id', [], 3)).toEqual(USERS.map((u) => u.id));
  });

  step('pg-query-stream: pinned to one shard by the key, 1 row per fetch', async () => {
    expect(await streamed('select id from orders where user_id = $1 order by id', [108], 1)).toEqual(
      orderIdsOf(108),
    );
  });

  step('pg-query-stream: inside a transaction that writes, then commit', async () => {
    await client.query('begin');
    await client.query('update users set score = score + 1 where id = $1', [101]);
    expect(await streamed('select id from users where score > $1 order by id', [50], 2)).toEqual(
      USERS.filter((u) => (u.id === 101 ? u.score + 1 : u.score) > 50).map((u) => u.id),
    );
    await client.query('commit');
    await client.query('update users set score = score - 1 where id = $1', [101]);
  });

  step('pg-query-stream: stopped after the first rows, then the connection goes on', async () => {
    const stream = client.query(new QueryStream('select id from users order by id', [], { batchSize: 2 }));
    const first: number[] = [];
    for await (const row of stream) {
      first.push((row as { id: number }).id);
      if (first.length === 3) break; // destroys the stream: pg-cursor closes its portal
    }
    expect(first).toEqual(USERS.slice(0, 3).map((u) => u.id));
    const r = await client.query('select count(*)::int as n from users');
    expect(r.rows[0].n).toBe(USERS.length);
  });

  step('pg-query-stream: an error midway reaches the stream, then the connection goes on', async () => {
    const failing = client.query(
      new QueryStream(
        'select id, 1 / (id - $1) as q from orders where user_id = $2 order by id',
        [1005, 104],
        {
          batchSize: 1,
        },
      ),
    );
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const row of failing) seen.push((row as { id: number }).id);
      })(),
    ).rejects.toThrow('division by zero');
    expect([[], [1004]]).toContainEqual(seen); // rows fetched before the error may be dropped with the stream
    const r = await client.query('insert into users (id, name, score) values ($1, $2, $3) returning *', [
      150,
      'late',
      1,
    ]);
    expect(r.rows).toEqual([{ id: 150, name: 'late', score: 1 }]);
    await client.query('delete from users where id = $1', [150]);
  });

  step('postgres.js: .cursor(4) across shards, ORDER BY', async () => {
    const ids: number[] = [];
    for await (const rows of sql<{ id: number }[]>`select id from users order by id`.cursor(4)) {
      expect(rows.length).toBeLessThanOrEqual(4);
      ids.push(...rows.map((r) => r.id));
    }
    expect(ids).toEqual(USERS.map((u) => u.id));
  });

  step('postgres.js: .cursor() pinned to one shard, stopped early, then the pool goes on', async () => {
    const ids: number[] = [];
    for await (const [row] of sql<
      { id: number }[]
    >`select id from orders where user_id = ${112} order by id`.cursor())
      ids.push(row.id);
    expect(ids).toEqual(orderIdsOf(112));
    for await (const rows of sql<{ id: number }[]>`select id from users order by id`.cursor(2)) {
      expect(rows.map((r) => r.id)).toEqual([101, 102]);
      break;
    }
    const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from orders`;
    expect(n).toBe(ORDERS.length);
  });

  step('postgres.js: .forEach() and a cursor inside sql.begin', async () => {
    let total = 0;
    await sql`select amount from orders`.forEach((row) => {
      total += (row as { amount: number }).amount;
    });
    expect(total).toBe(ORDERS.reduce((s, o) => s + o.amount, 0));
    const inTx = await sql.begin(async (tx) => {
      const ids: number[] = [];
      for await (const rows of tx<
        { id: number }[]
      >`select id from orders where amount > ${30} order by id`.cursor(2))
        ids.push(...rows.map((r) => r.id));
      return ids;
    });
    expect(inTx).toEqual(ORDERS.filter((o) => o.amount > 30).map((o) => o.id));
  });
});

// knex 3 (pg driver) on 2 shards through shardgate (2PC on) and on plain PostgreSQL: migrations, seeding, finds,
// pagination with counts, aggregates, upserts, RETURNING, streams, transactions, row locks, DDL and drop — one `it`
// per step per target, the same assertions on both.
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AMOUNT_SUM,
  ORDER_USER_COUNT,
  ORDERS,
  USERS,
  namesWithScoreAbove,
  orderTotals,
  userById,
} from './dataset.js';
import { rejection, startOrmTargets, within, type OrmTarget, type OrmTargets } from './targets.js';

const STEP_MS = 10_000;
let targets: OrmTargets;

/** knex's migrations, in memory: users and orders with serial ids (knex `increments`), as an app would write them. */
const MIGRATIONS: Record<string, Knex.Migration> = {
  '001_users_orders': {
    up: async (k) => {
      await k.schema.createTable('users', (t) => {
        t.increments('id');
        t.text('name').notNullable();
        t.integer('score').notNullable().defaultTo(0);
      });
      await k.schema.createTable('orders', (t) => {
        t.increments('id');
        t.integer('user_id').notNullable().references('id').inTable('users');
        t.integer('amount').notNullable();
      });
    },
    down: async (k) => {
      await k.schema.dropTable('orders');
      await k.schema.dropTable('users');
    },
  },
};

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name],
};

beforeAll(async () => {
  targets = await startOrmTargets();
});

afterAll(async () => {
  await targets?.stop();
});

function knexFor(t: OrmTarget): Knex {
  return knexFactory({
    client: 'pg',
    connection: { host: t.host, port: t.port, user: t.user, password: t.password, database: t.database },
    pool: { min: 0, max: 4 },
  });
}

describe.each(['shards', 'plain'] as const)('knex on %s', (name) => {
  let t: OrmTarget;
  let knex: Knex;

  beforeAll(() => {
    t = targets[name];
    knex = knexFor(t);
  });

  afterAll(async () => {
    await knex?.destroy();
  });

  const step = (title: string, fn: () => Promise<void>) => it(title, () => within(fn(), STEP_MS, title));

  step('migrates up (knex migrations: users and orders with serial ids)', async () => {
    const [batch, log] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
    expect(batch).toBe(1);
    expect(log).toEqual(['001_users_orders']);
    expect(await knex.schema.hasTable('users')).toBe(true);
    expect(await knex.schema.hasColumn('orders', 'user_id')).toBe(true);
    expect(await knex.migrate.currentVersion({ migrationSource })).toBe('001'); // the name up to its first '_'
  });

  step('seeds users and orders with multi-row inserts', async () => {
    const users = await knex('users')
      .insert(USERS.map((u) => ({ id: u.id, name: u.name, score: u.score })))
      .returning('id');
    expect(users.map((r) => r.id)).toEqual(USERS.map((u) => u.id)); // in VALUES order
    await knex('orders').insert(ORDERS.map((o) => ({ id: o.id, user_id: o.userId, amount: o.amount })));
    const [{ n }] = await knex('orders').count({ n: '*' });
    expect(Number(n)).toBe(ORDERS.length);
  });

  it.skipIf(name !== 'shards')('placed every user on the shard of its id', async () => {
    // Through the proxy a pinned read only sees its own shard's rows: a shard comment reads each shard.
    const onShard = async (shard: number) =>
      (await knex.raw(`/* shardgate: shard=${shard} */ select count(*)::int as n from users`)).rows[0]
        .n as number;
    expect((await onShard(0)) + (await onShard(1))).toBe(USERS.length);
    expect(await onShard(0)).toBeGreaterThan(0);
    expect(await onShard(1)).toBeGreaterThan(0);
  });

  it('seeds a user whose id the database generates', async () => {
    await within(
      (async () => {
        const [row] = await knex('users').insert({ name: 'generated', score: 1 }).returning(['id', 'name']);
        expect(row.id).toBeGreaterThan(0);
        expect(row.name).toBe('generated');
        const found = await knex('users').where({ id: row.id }).first();
        expect(found?.name).toBe('generated');
        await knex('users').where({ id: row.id }).del();
      })(),
      STEP_MS,
      'generated id',
    );
  });

  it('gives generated order ids unique across the table (orders on both shards)', async () => {
    const rows = await within(
      knex.transaction(async (trx) => [
        ...(await trx('orders').insert({ user_id: 101, amount: 1 }).returning('id')), // shard 0
        ...(await trx('orders').insert({ user_id: 103, amount: 1 }).returning('id')), // shard 1
      ]),
      STEP_MS,
      'generated order ids',
    );
    await knex('orders').where('amount', 1).del();
    expect(new Set(rows.map((r) => r.id)).size).toBe(2);
  });

  step('finds by key (one shard) and the orders of one user', async () => {
    const u = userById(105);
    expect(await knex('users').where({ id: 105 }).first()).toEqual({ id: 105, name: u.name, score: u.score });
    const mine = await knex('orders').where({ user_id: 108 }).orderBy('id').select('id', 'amount');
    expect(mine).toEqual(ORDERS.filter((o) => o.userId === 108).map((o) => ({ id: o.id, amount: o.amount })));
  });

  step('finds across shards (filter, IN list, ORDER BY)', async () => {
    const names = await knex('users').where('score', '>', 40).orderBy('name').pluck('name');
    expect(names).toEqual(namesWithScoreAbove(40));
    const some = await knex('users').whereIn('id', [101, 103, 110]).orderBy('id', 'desc').pluck('id');
    expect(some).toEqual([110, 103, 101]);
  });

  step('paginates with a total count (count(*), LIMIT/OFFSET)', async () => {
    const [{ total }] = await knex('users').count({ total: '*' });
    expect(Number(total)).toBe(USERS.length);
    const page = await knex('users').orderBy('id').limit(5).offset(5).pluck('id');
    expect(page).toEqual(USERS.slice(5, 10).map((u) => u.id));
  });

  it('counts distinct values (countDistinct)', async () => {
    const [{ n }] = await knex('orders').countDistinct({ n: 'user_id' });
    expect(Number(n)).toBe(ORDER_USER_COUNT);
  });

  step('aggregates and groups with HAVING', async () => {
    const [all] = await knex('orders').sum({ total: 'amount' }).max({ top: 'amount' }).count({ n: '*' });
    expect(Number(all.total)).toBe(AMOUNT_SUM);
    expect(Number(all.n)).toBe(ORDERS.length);
    type Group = { user_id: number; total: string; n: string };
    const groups: Group[] = await knex('orders')
      .select('user_id')
      .sum({ total: 'amount' })
      .count({ n: '*' })
      .groupBy('user_id')
      .having(knex.raw('sum(amount) > ?', [60]))
      .orderBy('user_id')
      .then((rows) => rows as unknown as Group[]);
    expect(groups.map((g) => ({ userId: g.user_id, total: Number(g.total), count: Number(g.n) }))).toEqual(
      orderTotals(60).map(({ userId, total, count }) => ({ userId, total, count })),
    );
  });

  step('upserts (INSERT … ON CONFLICT (id) DO UPDATE … RETURNING)', async () => {
    const [row] = await knex('users')
      .insert({ id: 101, name: 'ada', score: 99 })
      .onConflict('id')
      .merge(['score'])
      .returning('*');
    expect(row).toEqual({ id: 101, name: 'ada', score: 99 });
    const [fresh] = await knex('users')
      .insert({ id: 113, name: 'mo', score: 5 })
      .onConflict('id')
      .ignore()
      .returning('*');
    expect(fresh).toEqual({ id: 113, name: 'mo', score: 5 });
    expect(
      await knex('users').insert({ id: 113, name: 'x' }).onConflict('id').ignore().returning('*'),
    ).toEqual([]);
    await knex('users')
      .where({ id: 101 })
      .update({ score: userById(101).score });
    await knex('users').where({ id: 113 }).del();
  });

  step("returns rows from insert, update and delete (.returning('*'))", async () => {
    for (const id of [120, 121]) {
      expect(
        await knex('users')
          .insert({ id, name: `r${id}`, score: 1 })
          .returning('*'),
      ).toEqual([{ id, name: `r${id}`, score: 1 }]);
      expect(await knex('users').where({ id }).update({ score: 2 }).returning('*')).toEqual([
        { id, name: `r${id}`, score: 2 },
      ]);
      expect(await knex('users').where({ id }).del().returning('*')).toEqual([
        { id, name: `r${id}`, score: 2 },
      ]);
    }
    const moved = await knex('users')
      .whereIn('id', [102, 103])
      .update({ score: knex.raw('score') })
      .returning('id');
    expect(moved.map((r) => r.id).sort()).toEqual([102, 103]);
  });

  step('streams rows (.stream(): pg-query-stream, a cursor of a few rows at a time)', async () => {
    {
      {
        const ids: number[] = [];
        const stream = knex('users').orderBy('id').select('id').stream({ highWaterMark: 5 });
        for await (const row of stream) ids.push((row as { id: number }).id);
        expect(ids).toEqual(USERS.map((u) => u.id));
        // Pinned to one shard by the key: every fetch, the Close and the Sync must reach that shard.
        const pinned: number[] = [];
        for await (const row of knex('orders').where({ user_id: 108 }).orderBy('id').select('id').stream({
          highWaterMark: 1,
        }))
          pinned.push((row as { id: number }).id);
        expect(pinned).toEqual(ORDERS.filter((o) => o.userId === 108).map((o) => o.id));
        const inTx: number[] = [];
        await knex.transaction(async (trx) => {
          for await (const row of trx('orders').where('amount', '>', 30).orderBy('id').select('id').stream())
            inTx.push((row as { id: number }).id);
        });
        expect(inTx).toEqual(ORDERS.filter((o) => o.amount > 30).map((o) => o.id));
      }
    }
  });

  step('commits a transaction that writes on both shards', async () => {
    await knex.transaction(async (trx) => {
      await trx('users').where({ id: 101 }).increment('score', 1); // shard 0
      await trx('users').where({ id: 103 }).increment('score', 1); // shard 1
    });
    const scores = await knex('users').whereIn('id', [101, 103]).orderBy('id').pluck('score');
    expect(scores).toEqual([userById(101).score + 1, userById(103).score + 1]);
    await knex('users').whereIn('id', [101, 103]).decrement('score', 1);
  });

  step('rolls back a transaction (explicit rollback and a thrown error)', async () => {
    const trx = await knex.transaction();
    await trx('users').where({ id: 102 }).update({ name: 'gone' });
    await trx('users').where({ id: 105 }).update({ name: 'gone' });
    await trx.rollback();
    await expect(
      knex.transaction(async (tx) => {
        await tx('users').where({ id: 102 }).update({ name: 'gone' });
        throw new Error('app says no');
      }),
    ).rejects.toThrow('app says no');
    expect(await knex('users').whereIn('id', [102, 105]).orderBy('id').pluck('name')).toEqual(['bob', 'eve']);
  });

  step('rolls back to a savepoint (nested transaction) and commits the rest', async () => {
    await knex.transaction(async (trx) => {
      await trx('users').where({ id: 104 }).update({ name: 'dee2' });
      await expect(
        trx.transaction(async (sp) => {
          await sp('users').where({ id: 106 }).update({ name: 'fay2' });
          throw new Error('undo the inner part');
        }),
      ).rejects.toThrow('undo the inner part');
    });
    expect(await knex('users').whereIn('id', [104, 106]).orderBy('id').pluck('name')).toEqual([
      'dee2',
      'fay',
    ]);
    await knex('users').where({ id: 104 }).update({ name: 'dee' });
  });

  step('an SQL error inside a transaction rolls it back and names the error', async () => {
    const err = await rejection(
      knex.transaction(async (trx) => {
        await trx('users').where({ id: 107 }).update({ name: 'half' });
        await trx('users').where({ id: 109 }).update({ no_such_column: 1 });
      }),
    );
    expect(err.code).toBe('42703');
    expect(
      await knex('users')
        .where({ id: 107 })
        .first()
        .then((r) => r?.name),
    ).toBe('gus');
    expect(Number((await knex('users').count({ n: '*' }))[0].n)).toBe(USERS.length); // the pool goes on
  });

  step('locks a row (FOR UPDATE); another transaction cannot take it (NOWAIT → 55P03)', async () => {
    await knex.transaction(async (trx) => {
      const row = await trx('users').where({ id: 110 }).forUpdate().first();
      expect(row?.name).toBe('jo');
      const other = await rejection(
        knex.transaction((t2) => t2('users').where({ id: 110 }).forUpdate().noWait().first()),
      );
      expect(other.code).toBe('55P03');
      await trx('users').where({ id: 110 }).update({ score: row.score });
    });
  });

  step('changes the schema (add a column and an index) and drops it all (migrate.rollback)', async () => {
    await knex.schema.alterTable('users', (tb) => {
      tb.text('email');
      tb.index(['name'], 'users_name_idx');
    });
    expect(await knex.schema.hasColumn('users', 'email')).toBe(true);
    await knex('users').where({ id: 111 }).update({ email: 'kim@example.org' });
    expect(await knex('users').where({ email: 'kim@example.org' }).pluck('id')).toEqual([111]);
    const [batch, log] = (await knex.migrate.rollback({ migrationSource })) as [number, string[]];
    expect(batch).toBe(1);
    expect(log).toEqual(['001_users_orders']);
    expect(await knex.schema.hasTable('users')).toBe(false);
    expect(await knex.schema.hasTable('orders')).toBe(false);
  });
});

// TypeORM (postgres driver over pg) on 2 shards through shardgate (2PC on) and on plain PostgreSQL: migrations, seeding,
// finds, pagination with counts (findAndCount → COUNT(DISTINCT …)), aggregates, upserts, RETURNING, streams,
// transactions, row locks, DDL and drop — one `it` per step per target, the same assertions on both.
import 'reflect-metadata';
import {
  DataSource,
  EntitySchema,
  In,
  MoreThan,
  Table,
  TableColumn,
  TableForeignKey,
  TableIndex,
  type MigrationInterface,
  type QueryRunner,
} from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AMOUNT_SUM,
  ORDER_USER_COUNT,
  ORDERS,
  USERS,
  namesWithScoreAbove,
  orderTotals,
  userById,
  type OrderRow,
  type UserRow,
} from './dataset.js';
import { gapOnShards } from './gap.js';
import { rejection, startOrmTargets, within, type OrmTarget, type OrmTargets } from './targets.js';

const STEP_MS = 10_000;
let targets: OrmTargets;

// The tables have serial ids (the migration below), but TypeORM leaves a generated column out of every INSERT (it
// writes DEFAULT even when the entity carries an id): on shards no User could be inserted at all today. So the app
// entities take their ids from the app (a plain primary column), and GeneratedUser, the usual
// `@PrimaryGeneratedColumn()` mapping of the same table, shows the generated-id gap.
const User = new EntitySchema<UserRow>({
  name: 'User',
  tableName: 'users',
  columns: {
    id: { type: 'int', primary: true },
    name: { type: 'text' },
    score: { type: 'int', default: 0 },
  },
});

const GeneratedUser = new EntitySchema<UserRow>({
  name: 'GeneratedUser',
  tableName: 'users',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    name: { type: 'text' },
    score: { type: 'int', default: 0 },
  },
});

const Order = new EntitySchema<OrderRow>({
  name: 'Order',
  tableName: 'orders',
  columns: {
    id: { type: 'int', primary: true },
    userId: { type: 'int', name: 'user_id' },
    amount: { type: 'int' },
  },
});

/** TypeORM's migration API (QueryRunner.createTable …), as `typeorm migration:create` would start one. */
class UsersOrders1700000000000 implements MigrationInterface {
  name = 'UsersOrders1700000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'users',
        columns: [
          { name: 'id', type: 'int', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'name', type: 'text' },
          { name: 'score', type: 'int', default: 0 },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'orders',
        columns: [
          { name: 'id', type: 'int', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'int' },
          { name: 'amount', type: 'int' },
        ],
      }),
    );
    await q.createForeignKey(
      'orders',
      new TableForeignKey({
        columnNames: ['user_id'],
        referencedTableName: 'users',
        referencedColumnNames: ['id'],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('orders');
    await q.dropTable('users');
  }
}

beforeAll(async () => {
  targets = await startOrmTargets();
});

afterAll(async () => {
  await targets?.stop();
});

function dataSourceFor(t: OrmTarget): DataSource {
  return new DataSource({
    type: 'postgres',
    host: t.host,
    port: t.port,
    username: t.user,
    password: t.password,
    database: t.database,
    entities: [User, GeneratedUser, Order],
    migrations: [UsersOrders1700000000000],
    synchronize: false,
    logging: false,
    poolSize: 4,
  });
}

describe.each(['shards', 'plain'] as const)('TypeORM on %s', (name) => {
  const isSharded = name === 'shards';
  let ds: DataSource;

  beforeAll(async () => {
    ds = dataSourceFor(targets[name]);
    await ds.initialize();
  });

  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
  });

  const step = (title: string, fn: () => Promise<void>) => it(title, () => within(fn(), STEP_MS, title));
  const users = () => ds.getRepository(User);
  const orders = () => ds.getRepository(Order);

  step('migrates up (runMigrations: createTable, createForeignKey)', async () => {
    const ran = await ds.runMigrations({ transaction: 'all' });
    expect(ran.map((m) => m.name)).toEqual(['UsersOrders1700000000000']);
    const q = ds.createQueryRunner();
    try {
      expect(await q.hasTable('users')).toBe(true);
      expect(await q.hasColumn('orders', 'user_id')).toBe(true);
    } finally {
      await q.release();
    }
    expect(await ds.showMigrations()).toBe(false); // nothing pending
  });

  step('seeds users and orders with multi-row inserts (repository.insert)', async () => {
    const result = await users().insert(USERS.map((u) => ({ ...u })));
    expect(result.identifiers.map((i) => i.id)).toEqual(USERS.map((u) => u.id));
    await orders().insert(ORDERS.map((o) => ({ ...o })));
    const [{ n }] = await ds.query('select count(*)::int as n from orders');
    expect(n).toBe(ORDERS.length);
  });

  // gap: an INSERT without the sharding column (serial id generated by the database) is refused on shards
  gapOnShards({ isSharded })(
    'seeds a user whose id the database generates (save, @PrimaryGeneratedColumn)',
    async () => {
      await within(
        (async () => {
          const generated = ds.getRepository(GeneratedUser);
          const saved = await generated.save({ name: 'generated', score: 1 });
          expect(saved.id).toBeGreaterThan(0);
          expect((await users().findOneBy({ id: saved.id }))?.name).toBe('generated');
          await users().delete({ id: saved.id });
        })(),
        STEP_MS,
        'generated id',
      );
    },
  );

  step('finds by key (findOneBy) and the orders of one user', async () => {
    expect(await users().findOneBy({ id: 105 })).toEqual(userById(105));
    const mine = await orders().find({ where: { userId: 108 }, order: { id: 'ASC' } });
    expect(mine).toEqual(ORDERS.filter((o) => o.userId === 108));
  });

  step('finds across shards (MoreThan, In, ORDER BY)', async () => {
    const found = await users().find({ where: { score: MoreThan(40) }, order: { name: 'ASC' } });
    expect(found.map((u) => u.name)).toEqual(namesWithScoreAbove(40));
    const some = await users().find({ where: { id: In([101, 103, 110]) }, order: { id: 'DESC' } });
    expect(some.map((u) => u.id)).toEqual([110, 103, 101]);
  });

  step('paginates (find with skip/take, ordered)', async () => {
    const page = await users().find({ order: { id: 'ASC' }, skip: 5, take: 5 });
    expect(page.map((u) => u.id)).toEqual(USERS.slice(5, 10).map((u) => u.id));
  });

  step('paginates with a total count (findAndCount: COUNT(1) without joins)', async () => {
    const [page, total] = await users().findAndCount({ order: { id: 'ASC' }, skip: 5, take: 5 });
    expect(total).toBe(USERS.length);
    expect(page.map((u) => u.id)).toEqual(USERS.slice(5, 10).map((u) => u.id));
    expect(await orders().count({ where: { amount: MoreThan(30) } })).toBe(
      ORDERS.filter((o) => o.amount > 30).length,
    );
  });

  it('paginates a join with a total count (getManyAndCount → COUNT(DISTINCT))', async () => {
    await within(
      (async () => {
        const buyers = USERS.filter((u) => ORDERS.some((o) => o.userId === u.id && o.amount > 30)).map(
          (u) => u.id,
        );
        const [page, total] = await users()
          .createQueryBuilder('u')
          .innerJoin('orders', 'o', 'o.user_id = u.id')
          .where('o.amount > :min', { min: 30 })
          .orderBy('u.id')
          .skip(1)
          .take(2)
          .getManyAndCount();
        expect(total).toBe(buyers.length);
        expect(page.map((u) => u.id)).toEqual(buyers.slice(1, 3));
      })(),
      STEP_MS,
      'getManyAndCount',
    );
  });

  it('counts distinct values (COUNT(DISTINCT user_id))', async () => {
    await within(
      (async () => {
        const raw = await orders()
          .createQueryBuilder('o')
          .select('COUNT(DISTINCT o.userId)', 'n')
          .getRawOne<{ n: string }>();
        expect(Number(raw?.n)).toBe(ORDER_USER_COUNT);
      })(),
      STEP_MS,
      'count distinct',
    );
  });

  step('aggregates (sum, maximum) and groups with HAVING (query builder)', async () => {
    expect(await orders().sum('amount')).toBe(AMOUNT_SUM);
    expect(await orders().maximum('amount')).toBe(Math.max(...ORDERS.map((o) => o.amount)));
    const groups = await orders()
      .createQueryBuilder('o')
      .select('o.userId', 'userId')
      .addSelect('SUM(o.amount)', 'total')
      .addSelect('COUNT(*)', 'count')
      .groupBy('o.userId')
      .having('SUM(o.amount) > :min', { min: 60 })
      .orderBy('o.userId')
      .getRawMany<{ userId: number; total: string; count: string }>();
    expect(groups.map((g) => ({ userId: g.userId, total: Number(g.total), count: Number(g.count) }))).toEqual(
      orderTotals(60).map(({ userId, total, count }) => ({ userId, total, count })),
    );
  });

  step('upserts (repository.upsert → INSERT … ON CONFLICT (id) DO UPDATE)', async () => {
    await users().upsert({ id: 101, name: 'ada', score: 99 }, ['id']);
    expect(await users().findOneBy({ id: 101 })).toEqual({ id: 101, name: 'ada', score: 99 });
    await users().upsert([{ id: 113, name: 'mo', score: 5 }], { conflictPaths: ['id'] });
    expect(await users().findOneBy({ id: 113 })).toEqual({ id: 113, name: 'mo', score: 5 });
    await users().update({ id: 101 }, { score: userById(101).score });
    await users().delete({ id: 113 });
  });

  step('returns rows from insert, update and delete (query builder .returning("*"))', async () => {
    for (const id of [120, 121]) {
      const ins = await ds
        .createQueryBuilder()
        .insert()
        .into(User)
        .values({ id, name: `r${id}`, score: 1 })
        .returning('*')
        .execute();
      expect(ins.raw).toEqual([{ id, name: `r${id}`, score: 1 }]);
      const upd = await ds
        .createQueryBuilder()
        .update(User)
        .set({ score: 2 })
        .where('id = :id', { id })
        .returning('*')
        .execute();
      expect(upd.raw).toEqual([{ id, name: `r${id}`, score: 2 }]);
      const del = await ds
        .createQueryBuilder()
        .delete()
        .from(User)
        .where('id = :id', { id })
        .returning('*')
        .execute();
      expect(del.raw).toEqual([{ id, name: `r${id}`, score: 2 }]);
      expect(del.affected).toBe(1);
    }
  });

  step('streams rows (query builder .stream(): pg-query-stream) across shards and pinned', async () => {
    const ids: number[] = [];
    for await (const row of await users().createQueryBuilder('u').orderBy('u.id').stream())
      ids.push((row as { u_id: number }).u_id);
    expect(ids).toEqual(USERS.map((u) => u.id));
    const pinned: number[] = [];
    const q = orders().createQueryBuilder('o').where('o.userId = :u', { u: 108 }).orderBy('o.id');
    for await (const row of await q.stream()) pinned.push((row as { o_id: number }).o_id);
    expect(pinned).toEqual(ORDERS.filter((o) => o.userId === 108).map((o) => o.id));
  });

  step('commits a transaction that writes on both shards (dataSource.transaction)', async () => {
    await ds.transaction(async (m) => {
      await m.increment(User, { id: 101 }, 'score', 1); // shard 0
      await m.increment(User, { id: 103 }, 'score', 1); // shard 1
    });
    const scores = (await users().find({ where: { id: In([101, 103]) }, order: { id: 'ASC' } })).map(
      (u) => u.score,
    );
    expect(scores).toEqual([userById(101).score + 1, userById(103).score + 1]);
    await users().decrement({ id: In([101, 103]) }, 'score', 1);
  });

  step('rolls back a transaction (an error thrown inside)', async () => {
    await expect(
      ds.transaction(async (m) => {
        await m.update(User, { id: 102 }, { name: 'gone' });
        await m.update(User, { id: 105 }, { name: 'gone' });
        throw new Error('app says no');
      }),
    ).rejects.toThrow('app says no');
    const names = (await users().find({ where: { id: In([102, 105]) }, order: { id: 'ASC' } })).map(
      (u) => u.name,
    );
    expect(names).toEqual(['bob', 'eve']);
  });

  step('rolls back to a savepoint (nested startTransaction) and commits the rest', async () => {
    const q = ds.createQueryRunner();
    try {
      await q.startTransaction();
      await q.manager.update(User, { id: 104 }, { name: 'dee2' });
      await q.startTransaction(); // SAVEPOINT
      await q.manager.update(User, { id: 106 }, { name: 'fay2' });
      await q.rollbackTransaction(); // ROLLBACK TO SAVEPOINT
      await q.commitTransaction();
    } finally {
      await q.release();
    }
    const names = (await users().find({ where: { id: In([104, 106]) }, order: { id: 'ASC' } })).map(
      (u) => u.name,
    );
    expect(names).toEqual(['dee2', 'fay']);
    await users().update({ id: 104 }, { name: 'dee' });
  });

  step('an SQL error inside a transaction rolls it back and names the error', async () => {
    const err = await rejection(
      ds.transaction(async (m) => {
        await m.update(User, { id: 107 }, { name: 'half' });
        await m.query('update users set no_such_column = 1 where id = $1', [109]);
      }),
    );
    expect((err as { driverError?: { code?: string } }).driverError?.code).toBe('42703');
    expect((await users().findOneBy({ id: 107 }))?.name).toBe('gus');
    expect((await users().find()).length).toBe(USERS.length); // the pool goes on
  });

  step('locks a row (pessimistic_write); another transaction cannot take it (nowait → 55P03)', async () => {
    await ds.transaction(async (m) => {
      const row = await m.findOne(User, { where: { id: 110 }, lock: { mode: 'pessimistic_write' } });
      expect(row?.name).toBe('jo');
      const other = await rejection(
        ds.transaction((m2) =>
          m2.findOne(User, { where: { id: 110 }, lock: { mode: 'pessimistic_write', onLocked: 'nowait' } }),
        ),
      );
      expect((other as { driverError?: { code?: string } }).driverError?.code).toBe('55P03');
    });
  });

  step('changes the schema (addColumn, createIndex) and drops it all (undoLastMigration)', async () => {
    const q = ds.createQueryRunner();
    try {
      await q.addColumn('users', new TableColumn({ name: 'email', type: 'text', isNullable: true }));
      await q.createIndex('users', new TableIndex({ name: 'users_name_idx', columnNames: ['name'] }));
      expect(await q.hasColumn('users', 'email')).toBe(true);
      await q.query('update users set email = $1 where id = $2', ['kim@example.org', 111]);
      expect(await q.query('select id from users where email = $1', ['kim@example.org'])).toEqual([
        { id: 111 },
      ]);
    } finally {
      await q.release();
    }
    await ds.undoLastMigration({ transaction: 'all' });
    const q2 = ds.createQueryRunner();
    try {
      expect(await q2.hasTable('users')).toBe(false);
      expect(await q2.hasTable('orders')).toBe(false);
    } finally {
      await q2.release();
    }
  });
});

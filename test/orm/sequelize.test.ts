// Sequelize 6 (postgres dialect over pg) on 2 shards through shardgate (2PC on) and on plain PostgreSQL: sync (its
// schema mechanism) and queryInterface DDL, seeding, finds, findAndCountAll, aggregates with HAVING, upserts,
// RETURNING, managed transactions with savepoints, row locks, drop — one `it` per step per target, the same
// assertions on both. (Sequelize has no row streaming: see streams.test.ts for the drivers it sits on.)
import { DataTypes, Model, Op, Sequelize, fn, col, where, type InferAttributes } from 'sequelize';
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

class User extends Model<InferAttributes<User>, { id?: number; name: string; score: number }> {
  declare id: number;
  declare name: string;
  declare score: number;
}

class Order extends Model<InferAttributes<Order>, { id?: number; userId: number; amount: number }> {
  declare id: number;
  declare userId: number;
  declare amount: number;
}

beforeAll(async () => {
  targets = await startOrmTargets();
});

afterAll(async () => {
  await targets?.stop();
});

function sequelizeFor(t: OrmTarget): Sequelize {
  return new Sequelize(t.database, t.user, t.password, {
    host: t.host,
    port: t.port,
    dialect: 'postgres',
    logging: false,
    pool: { max: 4, min: 0 },
  });
}

/** Model definitions on `sequelize` (serial ids: autoIncrement), as an app declares them. */
function defineModels(sequelize: Sequelize): void {
  User.init(
    {
      id: { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true },
      name: { type: DataTypes.TEXT, allowNull: false },
      score: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
    },
    { sequelize, tableName: 'users', timestamps: false },
  );
  Order.init(
    {
      id: { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true },
      userId: { type: DataTypes.INTEGER, allowNull: false, field: 'user_id' },
      amount: { type: DataTypes.INTEGER, allowNull: false },
    },
    { sequelize, tableName: 'orders', timestamps: false },
  );
  User.hasMany(Order, { foreignKey: 'userId' });
  Order.belongsTo(User, { foreignKey: 'userId' });
}

const plainUser = (u: User | null) => (u === null ? null : { id: u.id, name: u.name, score: u.score });

describe.each(['shards', 'plain'] as const)('Sequelize on %s', (name) => {
  let sequelize: Sequelize;

  beforeAll(() => {
    sequelize = sequelizeFor(targets[name]);
    defineModels(sequelize);
  });

  afterAll(async () => {
    await sequelize?.close();
  });

  const step = (title: string, fn: () => Promise<void>) => it(title, () => within(fn(), STEP_MS, title));

  step('creates the schema (sync: users, orders with a foreign key)', async () => {
    await sequelize.sync();
    const tables = (await sequelize.getQueryInterface().showAllTables()).map(String).sort();
    expect(tables).toEqual(['orders', 'users']);
    const columns = await sequelize.getQueryInterface().describeTable('orders');
    expect(Object.keys(columns).sort()).toEqual(['amount', 'id', 'user_id']);
  });

  step('seeds users and orders with multi-row inserts (bulkCreate)', async () => {
    const created = await User.bulkCreate(USERS.map((u) => ({ ...u })));
    expect(created.map((u) => u.id)).toEqual(USERS.map((u) => u.id));
    await Order.bulkCreate(ORDERS.map((o) => ({ ...o })));
    expect(await Order.count()).toBe(ORDERS.length);
  });

  it('seeds a user whose id the database generates (create)', async () => {
    await within(
      (async () => {
        const u = await User.create({ name: 'generated', score: 1 });
        expect(u.id).toBeGreaterThan(0);
        expect((await User.findByPk(u.id))?.name).toBe('generated');
        await u.destroy();
      })(),
      STEP_MS,
      'generated id',
    );
  });

  step('finds by key (findByPk) and the orders of one user', async () => {
    expect(plainUser(await User.findByPk(105))).toEqual(userById(105));
    const mine = await Order.findAll({ where: { userId: 108 }, order: [['id', 'ASC']], raw: true });
    expect(mine).toEqual(ORDERS.filter((o) => o.userId === 108));
  });

  step('finds across shards (Op.gt, an id list, ORDER BY) and a user with its orders (include)', async () => {
    const found = await User.findAll({ where: { score: { [Op.gt]: 40 } }, order: [['name', 'ASC']] });
    expect(found.map((u) => u.name)).toEqual(namesWithScoreAbove(40));
    const some = await User.findAll({ where: { id: [101, 103, 110] }, order: [['id', 'DESC']] });
    expect(some.map((u) => u.id)).toEqual([110, 103, 101]);
    const withOrders = await User.findByPk(108, { include: [Order], order: [[Order, 'id', 'ASC']] });
    const own = (withOrders as unknown as { Orders: Order[] }).Orders.map((o) => o.id);
    expect(own).toEqual(ORDERS.filter((o) => o.userId === 108).map((o) => o.id));
  });

  step('paginates with a total count (findAndCountAll)', async () => {
    const { rows, count } = await User.findAndCountAll({ order: [['id', 'ASC']], offset: 5, limit: 5 });
    expect(count).toBe(USERS.length);
    expect(rows.map((u) => u.id)).toEqual(USERS.slice(5, 10).map((u) => u.id));
  });

  it('paginates with an include and a distinct count (findAndCountAll)', async () => {
    await within(
      (async () => {
        const { rows, count } = await User.findAndCountAll({
          include: [{ model: Order, where: { amount: { [Op.gt]: 30 } } }],
          distinct: true,
          order: [['id', 'ASC']],
        });
        const buyers = USERS.filter((u) => ORDERS.some((o) => o.userId === u.id && o.amount > 30));
        expect(count).toBe(buyers.length);
        expect(rows.map((u) => u.id)).toEqual(buyers.map((u) => u.id));
        expect(await Order.count({ distinct: true, col: 'userId' })).toBe(ORDER_USER_COUNT);
      })(),
      STEP_MS,
      'findAndCountAll distinct',
    );
  });

  step('aggregates (sum, max) and groups with HAVING', async () => {
    expect(await Order.sum('amount')).toBe(AMOUNT_SUM);
    expect(await Order.max('amount')).toBe(Math.max(...ORDERS.map((o) => o.amount)));
    const groups = (await Order.findAll({
      attributes: ['userId', [fn('sum', col('amount')), 'total'], [fn('count', col('*')), 'n']],
      group: ['userId'],
      having: where(fn('sum', col('amount')), { [Op.gt]: 60 }),
      order: [['userId', 'ASC']],
      raw: true,
    })) as unknown as { userId: number; total: string; n: string }[];
    expect(groups.map((g) => ({ userId: g.userId, total: Number(g.total), count: Number(g.n) }))).toEqual(
      orderTotals(60).map(({ userId, total, count }) => ({ userId, total, count })),
    );
  });

  step('upserts (Model.upsert → INSERT … ON CONFLICT (id) DO UPDATE … RETURNING)', async () => {
    const [row] = await User.upsert({ id: 101, name: 'ada', score: 99 });
    expect(plainUser(row)).toEqual({ id: 101, name: 'ada', score: 99 });
    const [fresh] = await User.upsert({ id: 113, name: 'mo', score: 5 });
    expect(plainUser(fresh)).toEqual({ id: 113, name: 'mo', score: 5 });
    await User.update({ score: userById(101).score }, { where: { id: 101 } });
    await User.destroy({ where: { id: 113 } });
  });

  step('returns rows from insert and update (create, update with returning)', async () => {
    for (const id of [120, 121]) {
      expect(plainUser(await User.create({ id, name: `r${id}`, score: 1 }))).toEqual({
        id,
        name: `r${id}`,
        score: 1,
      });
      const [n, rows] = await User.update({ score: 2 }, { where: { id }, returning: true });
      expect(n).toBe(1);
      expect(rows.map(plainUser)).toEqual([{ id, name: `r${id}`, score: 2 }]);
      expect(await User.destroy({ where: { id } })).toBe(1);
    }
  });

  step('commits a managed transaction that writes on both shards', async () => {
    await sequelize.transaction(async (transaction) => {
      await User.increment('score', { by: 1, where: { id: 101 }, transaction }); // shard 0
      await User.increment('score', { by: 1, where: { id: 103 }, transaction }); // shard 1
    });
    const scores = (await User.findAll({ where: { id: [101, 103] }, order: [['id', 'ASC']] })).map(
      (u) => u.score,
    );
    expect(scores).toEqual([userById(101).score + 1, userById(103).score + 1]);
    await User.decrement('score', { by: 1, where: { id: [101, 103] } });
  });

  step('rolls back a transaction (unmanaged rollback, and an error thrown in a managed one)', async () => {
    const t = await sequelize.transaction();
    await User.update({ name: 'gone' }, { where: { id: 102 }, transaction: t });
    await User.update({ name: 'gone' }, { where: { id: 105 }, transaction: t });
    await t.rollback();
    await expect(
      sequelize.transaction(async (transaction) => {
        await User.update({ name: 'gone' }, { where: { id: 102 }, transaction });
        throw new Error('app says no');
      }),
    ).rejects.toThrow('app says no');
    const names = (await User.findAll({ where: { id: [102, 105] }, order: [['id', 'ASC']] })).map(
      (u) => u.name,
    );
    expect(names).toEqual(['bob', 'eve']);
  });

  step('rolls back to a savepoint (nested transaction) and commits the rest', async () => {
    await sequelize.transaction(async (outer) => {
      await User.update({ name: 'dee2' }, { where: { id: 104 }, transaction: outer });
      await expect(
        sequelize.transaction({ transaction: outer }, async (inner) => {
          await User.update({ name: 'fay2' }, { where: { id: 106 }, transaction: inner });
          throw new Error('undo the inner part');
        }),
      ).rejects.toThrow('undo the inner part');
    });
    const names = (await User.findAll({ where: { id: [104, 106] }, order: [['id', 'ASC']] })).map(
      (u) => u.name,
    );
    expect(names).toEqual(['dee2', 'fay']);
    await User.update({ name: 'dee' }, { where: { id: 104 } });
  });

  step('an SQL error inside a transaction rolls it back and names the error', async () => {
    const err = await rejection(
      sequelize.transaction(async (transaction) => {
        await User.update({ name: 'half' }, { where: { id: 107 }, transaction });
        await sequelize.query('update users set no_such_column = 1 where id = 109', { transaction });
      }),
    );
    expect((err as { parent?: { code?: string } }).parent?.code).toBe('42703');
    expect((await User.findByPk(107))?.name).toBe('gus');
    expect(await User.count()).toBe(USERS.length); // the pool goes on
  });

  step('locks a row (lock: UPDATE); another transaction skips it (skipLocked)', async () => {
    await sequelize.transaction(async (t) => {
      const row = await User.findByPk(110, { transaction: t, lock: t.LOCK.UPDATE });
      expect(row?.name).toBe('jo');
      const other = await sequelize.transaction((t2) =>
        User.findAll({ where: { id: [110, 111] }, transaction: t2, lock: t2.LOCK.UPDATE, skipLocked: true }),
      );
      expect(other.map((u) => u.id)).toEqual([111]);
    });
  });

  step('changes the schema (addColumn, addIndex) and drops it all (sequelize.drop)', async () => {
    const qi = sequelize.getQueryInterface();
    await qi.addColumn('users', 'email', { type: DataTypes.TEXT, allowNull: true });
    await qi.addIndex('users', ['name'], { name: 'users_name_idx' });
    expect(Object.keys(await qi.describeTable('users'))).toContain('email');
    await sequelize.query("update users set email = 'kim@example.org' where id = 111");
    const [found] = await sequelize.query("select id from users where email = 'kim@example.org'");
    expect(found).toEqual([{ id: 111 }]);
    await sequelize.drop();
    expect(await qi.showAllTables()).toEqual([]);
  });
});

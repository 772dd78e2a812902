// Prisma 7 (prisma-client generator, @prisma/adapter-pg: no engine binaries) on 2 shards through shardgate (2PC on)
// and on plain PostgreSQL: the migration, seeding, finds (a composite unique key too), pagination with count(),
// aggregate / groupBy with having, upsert, returning (create/update/delete and *ManyAndReturn), $queryRaw with
// Prisma.join and = ANY, batch and interactive transactions, row locks, DDL and drop — one `it` per step per target.
//
// Offline: `prisma generate` needs no engine, but the CLI checks for (and would download) the native schema engine
// first; PRISMA_SCHEMA_ENGINE_BINARY points it at a stand-in that only explains itself. `prisma migrate` / `db push` /
// `db execute` do run the schema engine, which only binaries.prisma.sh serves: the committed migration
// (prisma/migrations, as `prisma migrate diff` writes it) is applied here through the client instead.
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PrismaPg } from '@prisma/adapter-pg';
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
import { gapOnShards } from './gap.js';
import { rejection, startOrmTargets, within, type OrmTarget, type OrmTargets } from './targets.js';

const STEP_MS = 10_000;
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const MIGRATION_SQL = readFileSync(join(HERE, 'prisma', 'migrations', '0001_init', 'migration.sql'), 'utf8');
const DOWN_SQL = 'DROP TABLE "orders"; DROP TABLE "users";';

/**
 * The generated client module. Its types exist only once `prisma generate` has run (at test time, after typecheck),
 * so the client is used untyped here.
 */
interface GeneratedClient {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the generated PrismaClient class (see above)
  PrismaClient: new (options: { adapter: PrismaPg }) => any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the generated Prisma namespace (sql, join)
  Prisma: any;
}

let targets: OrmTargets;
let workDir: string;
let generated: GeneratedClient;

/** `prisma generate` into a fresh folder under .tmp/, offline (see the header); returns the client module. */
async function generateClient(): Promise<GeneratedClient> {
  mkdirSync(join(REPO, '.tmp'), { recursive: true });
  workDir = mkdtempSync(join(REPO, '.tmp', 'prisma-'));
  copyFileSync(join(HERE, 'prisma', 'schema.prisma'), join(workDir, 'schema.prisma'));
  writeFileSync(
    join(workDir, 'prisma.config.ts'),
    "import { defineConfig } from 'prisma/config';\nexport default defineConfig({ schema: 'schema.prisma' });\n",
  );
  const standIn = join(workDir, 'schema-engine-unavailable');
  writeFileSync(
    standIn,
    '#!/bin/sh\necho "the native schema engine is not available offline (only binaries.prisma.sh serves it)" >&2\nexit 1\n',
  );
  chmodSync(standIn, 0o755);
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js');
  await promisify(execFile)(process.execPath, [cli, 'generate'], {
    cwd: workDir,
    env: {
      ...process.env,
      PRISMA_SCHEMA_ENGINE_BINARY: standIn,
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
      CHECKPOINT_DISABLE: '1',
    },
    timeout: 60_000,
  });
  return (await import(pathToFileURL(join(workDir, 'generated', 'client.ts')).href)) as GeneratedClient;
}

beforeAll(async () => {
  [targets, generated] = await Promise.all([startOrmTargets(), generateClient()]);
}, 90_000);

afterAll(async () => {
  await targets?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** The SQLSTATE PostgreSQL reported behind a Prisma error (adapter-pg keeps it as the driver error's original code). */
function sqlState(err: unknown): string | undefined {
  const e = err as { meta?: { driverAdapterError?: { cause?: { originalCode?: string } } }; code?: string };
  return e.meta?.driverAdapterError?.cause?.originalCode;
}

describe.each(['shards', 'plain'] as const)('Prisma 7 on %s', (name) => {
  const isSharded = name === 'shards';
  let t: OrmTarget;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an instance of the generated PrismaClient
  let prisma: any;

  beforeAll(async () => {
    t = targets[name];
    prisma = new generated.PrismaClient({ adapter: new PrismaPg({ connectionString: t.url, max: 4 }) });
    await prisma.$connect();
  });

  afterAll(async () => {
    await prisma?.$disconnect();
  });

  const step = (title: string, fn: () => Promise<void>) => it(title, () => within(fn(), STEP_MS, title));
  const Prisma = () => generated.Prisma;

  step('applies the migration (migration.sql, statement by statement)', async () => {
    for (const statement of MIGRATION_SQL.split(/;\s*$/m).filter(
      (s) => s.replace(/--.*$/gm, '').trim() !== '',
    ))
      await prisma.$executeRawUnsafe(statement);
    const tables = await prisma.$queryRaw`
      select table_name::text as name from information_schema.tables
      where table_schema = 'public' and table_name in ('users', 'orders') order by 1`;
    expect(tables).toEqual([{ name: 'orders' }, { name: 'users' }]);
  });

  step('seeds users and orders with multi-row inserts (createMany)', async () => {
    expect(await prisma.user.createMany({ data: USERS.map((u) => ({ ...u })) })).toEqual({
      count: USERS.length,
    });
    expect(await prisma.order.createMany({ data: ORDERS.map((o) => ({ ...o })) })).toEqual({
      count: ORDERS.length,
    });
  });

  // gap: an INSERT without the sharding column (Int @default(autoincrement())) is refused on shards
  gapOnShards({ isSharded })('seeds a user whose id the database generates (create)', async () => {
    await within(
      (async () => {
        const u = await prisma.user.create({ data: { name: 'generated', score: 1 } });
        expect(u.id).toBeGreaterThan(0);
        expect((await prisma.user.findFirst({ where: { id: u.id } }))?.name).toBe('generated');
        await prisma.user.deleteMany({ where: { id: u.id } });
      })(),
      STEP_MS,
      'generated id',
    );
  });

  step('finds by key (findFirst, findMany) and the orders of one user', async () => {
    expect(await prisma.user.findFirst({ where: { id: 105 } })).toEqual(userById(105));
    const mine = await prisma.order.findMany({ where: { userId: 108 }, orderBy: { id: 'asc' } });
    expect(mine).toEqual(ORDERS.filter((o) => o.userId === 108));
  });

  step('finds by unique keys (findUnique: id, composite userId_id)', async () => {
    {
      {
        expect(await prisma.user.findUnique({ where: { id: 105 } })).toEqual(userById(105));
        const first = ORDERS.find((o) => o.userId === 108);
        expect(
          await prisma.order.findUnique({ where: { userId_id: { userId: 108, id: first?.id } } }),
        ).toEqual(first);
      }
    }
  });

  step('finds across shards (gt, in, orderBy) and a user with its orders (include)', async () => {
    const found = await prisma.user.findMany({ where: { score: { gt: 40 } }, orderBy: { name: 'asc' } });
    expect(found.map((u: { name: string }) => u.name)).toEqual(namesWithScoreAbove(40));
    const some = await prisma.user.findMany({
      where: { id: { in: [101, 103, 110] } },
      orderBy: { id: 'desc' },
    });
    expect(some.map((u: { id: number }) => u.id)).toEqual([110, 103, 101]);
    const withOrders = await prisma.user.findFirst({
      where: { id: 108 },
      include: { orders: { orderBy: { id: 'asc' } } },
    });
    expect(withOrders.orders).toEqual(ORDERS.filter((o) => o.userId === 108));
  });

  step('paginates (findMany skip/take, ordered)', async () => {
    const page = await prisma.user.findMany({ orderBy: { id: 'asc' }, skip: 5, take: 5 });
    expect(page.map((u: { id: number }) => u.id)).toEqual(USERS.slice(5, 10).map((u) => u.id));
  });

  // gap: count() runs COUNT(*) over a subquery with OFFSET, refused across shards with 0A000
  gapOnShards({ isSharded })('counts for pagination (count, count with where)', async () => {
    await within(
      (async () => {
        expect(await prisma.user.count()).toBe(USERS.length);
        expect(await prisma.order.count({ where: { amount: { gt: 30 } } })).toBe(
          ORDERS.filter((o) => o.amount > 30).length,
        );
      })(),
      STEP_MS,
      'count',
    );
  });

  // gap: aggregate() runs its aggregates over a subquery with OFFSET, refused across shards with 0A000
  gapOnShards({ isSharded })('aggregates (aggregate: _sum, _max, _count)', async () => {
    await within(
      (async () => {
        const agg = await prisma.order.aggregate({
          _sum: { amount: true },
          _max: { amount: true },
          _count: true,
        });
        expect(agg._sum.amount).toBe(AMOUNT_SUM);
        expect(agg._count).toBe(ORDERS.length);
      })(),
      STEP_MS,
      'aggregate',
    );
  });

  step('groups with having (groupBy: _sum, _count, having, orderBy)', async () => {
    {
      {
        const groups = await prisma.order.groupBy({
          by: ['userId'],
          _sum: { amount: true },
          _count: { _all: true },
          having: { amount: { _sum: { gt: 60 } } },
          orderBy: { userId: 'asc' },
        });
        expect(
          groups.map((g: { userId: number; _sum: { amount: number }; _count: { _all: number } }) => ({
            userId: g.userId,
            total: g._sum.amount,
            count: g._count._all,
          })),
        ).toEqual(orderTotals(60).map(({ userId, total, count }) => ({ userId, total, count })));
      }
    }
  });

  step('upserts (upsert: update an existing row, create a new one)', async () => {
    {
      {
        expect(
          await prisma.user.upsert({
            where: { id: 101 },
            update: { score: 99 },
            create: { id: 101, name: 'ada', score: 99 },
          }),
        ).toEqual({ id: 101, name: 'ada', score: 99 });
        expect(
          await prisma.user.upsert({
            where: { id: 113 },
            update: {},
            create: { id: 113, name: 'mo', score: 5 },
          }),
        ).toEqual({ id: 113, name: 'mo', score: 5 });
        await prisma.user.updateMany({ where: { id: 101 }, data: { score: userById(101).score } });
        await prisma.user.deleteMany({ where: { id: 113 } });
      }
    }
  });

  step('returns rows (create, createManyAndReturn, updateManyAndReturn, deleteMany)', async () => {
    expect(await prisma.user.create({ data: { id: 120, name: 'r120', score: 1 } })).toEqual({
      id: 120,
      name: 'r120',
      score: 1,
    });
    const many = await prisma.user.createManyAndReturn({
      data: [
        { id: 121, name: 'r121', score: 1 },
        { id: 122, name: 'r122', score: 1 },
      ],
    });
    expect(many.map((u: { id: number }) => u.id)).toEqual([121, 122]);
    const updated = await prisma.user.updateManyAndReturn({
      where: { id: { in: [120, 121, 122] } },
      data: { score: 2 },
    });
    expect(updated.map((u: { id: number; score: number }) => [u.id, u.score]).sort()).toEqual([
      [120, 2],
      [121, 2],
      [122, 2],
    ]);
    expect(await prisma.user.deleteMany({ where: { id: { in: [120, 121, 122] } } })).toEqual({ count: 3 });
  });

  step('updates and deletes one row by its key (update, delete)', async () => {
    {
      {
        await prisma.user.create({ data: { id: 123, name: 'r123', score: 1 } });
        expect(await prisma.user.update({ where: { id: 123 }, data: { score: 2 } })).toEqual({
          id: 123,
          name: 'r123',
          score: 2,
        });
        expect(await prisma.user.delete({ where: { id: 123 } })).toEqual({ id: 123, name: 'r123', score: 2 });
      }
    }
  });

  step('raw queries with Prisma.join and = ANY($1)', async () => {
    {
      {
        const P = Prisma();
        const ids = [104, 108, 112];
        const joined = await prisma.$queryRaw(
          P.sql`select user_id, sum(amount)::int as total from orders where user_id in (${P.join(ids)})
                group by user_id order by user_id`,
        );
        expect(joined).toEqual(
          orderTotals()
            .filter((x) => ids.includes(x.userId))
            .map((x) => ({ user_id: x.userId, total: x.total })),
        );
        const [{ total }] =
          await prisma.$queryRaw`select sum(amount) as total from orders where user_id = any(${ids})`;
        expect(Number(total)).toBe(
          ORDERS.filter((o) => ids.includes(o.userId)).reduce((s, o) => s + o.amount, 0),
        );
      }
    }
  });

  it('counts distinct values ($queryRaw count(distinct user_id))', async () => {
    const distinct = await within(
      prisma.$queryRaw`select count(distinct user_id)::int as n from orders`,
      STEP_MS,
      'count distinct',
    );
    expect(distinct).toEqual([{ n: ORDER_USER_COUNT }]);
  });

  step('commits a batch transaction and an interactive one that write on both shards', async () => {
    await prisma.$transaction([
      prisma.user.updateMany({ where: { id: 101 }, data: { score: { increment: 1 } } }), // shard 0
      prisma.user.updateMany({ where: { id: 103 }, data: { score: { increment: 1 } } }), // shard 1
    ]);
    await prisma.$transaction(async (tx: typeof prisma) => {
      await tx.user.updateMany({ where: { id: 101 }, data: { score: { increment: 1 } } });
      await tx.user.updateMany({ where: { id: 103 }, data: { score: { increment: 1 } } });
    });
    const scores = await prisma.user.findMany({ where: { id: { in: [101, 103] } }, orderBy: { id: 'asc' } });
    expect(scores.map((u: { score: number }) => u.score)).toEqual([
      userById(101).score + 2,
      userById(103).score + 2,
    ]);
    await prisma.user.updateMany({ where: { id: { in: [101, 103] } }, data: { score: { decrement: 2 } } });
  });

  step('rolls back an interactive transaction (an error thrown inside)', async () => {
    await expect(
      prisma.$transaction(async (tx: typeof prisma) => {
        await tx.user.updateMany({ where: { id: 102 }, data: { name: 'gone' } });
        await tx.user.updateMany({ where: { id: 105 }, data: { name: 'gone' } });
        throw new Error('app says no');
      }),
    ).rejects.toThrow('app says no');
    const names = await prisma.user.findMany({ where: { id: { in: [102, 105] } }, orderBy: { id: 'asc' } });
    expect(names.map((u: { name: string }) => u.name)).toEqual(['bob', 'eve']);
  });

  step('an SQL error inside a transaction rolls it back and names the error', async () => {
    const err = await rejection(
      prisma.$transaction(async (tx: typeof prisma) => {
        await tx.user.updateMany({ where: { id: 107 }, data: { name: 'half' } });
        await tx.$executeRaw`update users set no_such_column = 1 where id = 109`;
      }),
    );
    expect(sqlState(err)).toBe('42703');
    expect((await prisma.user.findFirst({ where: { id: 107 } }))?.name).toBe('gus');
  });

  step(
    'locks a row (SELECT … FOR UPDATE in $transaction); another cannot take it (NOWAIT → 55P03)',
    async () => {
      await prisma.$transaction(async (tx: typeof prisma) => {
        const [row] = await tx.$queryRaw`select name from users where id = 110 for update`;
        expect(row.name).toBe('jo');
        const other = await rejection(
          prisma.$transaction(
            (tx2: typeof prisma) => tx2.$queryRaw`select 1 from users where id = 110 for update nowait`,
          ),
        );
        expect(sqlState(other)).toBe('55P03');
      });
    },
  );

  step('changes the schema (add a column and an index) and drops the tables', async () => {
    await prisma.$executeRawUnsafe('ALTER TABLE "users" ADD COLUMN "email" TEXT');
    await prisma.$executeRawUnsafe('CREATE INDEX "users_name_idx" ON "users"("name")');
    await prisma.$executeRaw`update users set email = 'kim@example.org' where id = 111`;
    expect(await prisma.$queryRaw`select id from users where email = 'kim@example.org'`).toEqual([
      { id: 111 },
    ]);
    for (const statement of DOWN_SQL.split(';').filter((s) => s.trim() !== ''))
      await prisma.$executeRawUnsafe(statement);
    const left = await prisma.$queryRaw`
      select count(*)::int as n from information_schema.tables where table_name in ('users', 'orders')`;
    expect(left).toEqual([{ n: 0 }]);
  });
});

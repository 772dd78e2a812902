// SQL-level session statements on 2 real shards. PREPARE / EXECUTE / DEALLOCATE: EXECUTE runs where its prepared
// statement routes with those arguments (never on every shard), prepared statements follow the session onto whichever
// pooled server it is given (replayed, and another session's statement of the same name moved out of the way), and
// what the shards cannot run as an EXECUTE is refused with 0A000. DECLARE / FETCH / CLOSE: a cursor lives on the one
// shard its query reads, and FETCH goes there; a cursor over several shards is refused. Functions taking a backend
// pid are refused unless routed by hand.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let transactionMode: TestProxy;
let sessionMode: TestProxy;
let direct: pg.Client[];
const open: pg.Client[] = [];

async function connect(proxy: TestProxy): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

async function idsOn(shard: number): Promise<number[]> {
  const r = await direct[shard].query<{ id: string }>('select id from users order by id');
  return r.rows.map((row) => Number(row.id));
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (e: pg.DatabaseError) => e.code,
  );
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  // One server per shard: every session shares it, so a statement must be brought to it each time.
  transactionMode = await startTestProxy(cluster, {
    extraPgdog: USERS_SHARDING_TOML,
    userExtra: 'pool_size = 1',
  });
  sessionMode = await startTestProxy(cluster, {
    extraPgdog: USERS_SHARDING_TOML,
    general: 'pooler_mode = "session"',
  });
  direct = await directShardClients(cluster);
  const c = await connect(transactionMode);
  await c.query('create table users (id bigint primary key, name text)');
});

afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await transactionMode?.close();
  await sessionMode?.close();
  await cluster?.stop();
});

describe.each([
  ['transaction mode', () => transactionMode, 100],
  ['session mode', () => sessionMode, 200],
])('SQL PREPARE / EXECUTE in %s', (_mode, proxy, base) => {
  it('EXECUTE of an INSERT lands on the key’s shard only, with its own tag', async () => {
    const c = await connect(proxy());
    const [a, b] = [idOn(0, base), idOn(1, base)];
    await c.query('prepare ins (bigint, text) as insert into users values ($1, $2)');
    const r = await c.query(`execute ins(${a}, 'a')`);
    expect([r.command, r.rowCount]).toEqual(['INSERT', 1]);
    await c.query(`execute ins('${b}', 'b')`);
    expect((await idsOn(0)).includes(a) && !(await idsOn(1)).includes(a)).toBe(true);
    expect((await idsOn(1)).includes(b) && !(await idsOn(0)).includes(b)).toBe(true);
    await c.query('deallocate ins');
  });

  it('EXECUTE of a SELECT by key reads its shard; without a key the shards’ counts are merged', async () => {
    const c = await connect(proxy());
    const a = idOn(0, base + 10);
    await c.query(`insert into users values (${a}, 'sel')`);
    await c.query('prepare one_user (bigint) as select name from users where id = $1');
    expect((await c.query(`execute one_user(${a})`)).rows).toEqual([{ name: 'sel' }]);
    await c.query('prepare how_many as select count(*)::int as n from users');
    const total = (await idsOn(0)).length + (await idsOn(1)).length;
    expect((await c.query('execute how_many')).rows).toEqual([{ n: total }]);
    await c.query('deallocate all');
    expect(await codeOf(c.query('execute how_many'))).toBe('26000');
  });

  it('refuses what the shards cannot run as the client’s EXECUTE, and keeps serving', async () => {
    const c = await connect(proxy());
    await c.query('prepare two (bigint, bigint) as insert into users values ($1, null), ($2, null)');
    expect(await codeOf(c.query(`execute two(${idOn(0, base + 20)}, ${idOn(1, base + 20)})`))).toBe('0A000');
    await c.query('prepare by_id (bigint) as select * from users where id = $1');
    expect(await codeOf(c.query('execute by_id(1 + 1)'))).toBe('0A000');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });
});

describe('prepared statements follow the session from server to server', () => {
  it('two sessions preparing the same name on one shared server each get their own statement', async () => {
    const [x, y] = [await connect(transactionMode), await connect(transactionMode)];
    await x.query('prepare which as select 1 as v');
    await y.query('prepare which as select 2 as v');
    for (let i = 0; i < 3; i++) {
      expect((await x.query('execute which')).rows).toEqual([{ v: 1 }]);
      expect((await y.query('execute which')).rows).toEqual([{ v: 2 }]);
    }
    // DISCARD ALL forgets them, on the servers too.
    await x.query('discard all');
    expect(await codeOf(x.query('execute which'))).toBe('26000');
    expect((await y.query('execute which')).rows).toEqual([{ v: 2 }]);
  });

  it('a statement prepared inside a transaction block is kept once it commits', async () => {
    const c = await connect(transactionMode);
    const a = idOn(1, 500);
    await c.query('begin');
    await c.query(`insert into users values (${a}, 'in block')`);
    await c.query('prepare later (bigint) as select name from users where id = $1');
    await c.query('commit');
    expect((await c.query(`execute later(${a})`)).rows).toEqual([{ name: 'in block' }]);
  });
});

describe('SQL cursors', () => {
  it('DECLARE on one shard; FETCH, MOVE and CLOSE follow it there', async () => {
    const c = await connect(transactionMode);
    const ids: number[] = [];
    for (let from = 700; ids.length < 3; from = ids[ids.length - 1] + 1) ids.push(idOn(1, from));
    for (const id of ids) await c.query(`insert into users values (${id}, 'cursor')`);
    await c.query('begin');
    await c.query(
      `declare cur cursor for select id from users where id = any('{${ids.join(',')}}') order by id`,
    );
    const first = await c.query('fetch 1 from cur');
    expect(first.rows.map((r) => Number(r.id))).toEqual([ids[0]]);
    await c.query('move next in cur');
    const rest = await c.query('fetch all from cur');
    expect(rest.rows.map((r) => Number(r.id))).toEqual(ids.slice(2));
    await c.query('close cur');
    await c.query('commit');
  });

  it('refuses a cursor whose query reads several shards, and keeps serving', async () => {
    const c = await connect(transactionMode);
    await c.query('begin');
    expect(await codeOf(c.query('declare wide cursor for select id from users order by id'))).toBe('0A000');
    await c.query('rollback');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });
});

describe('functions taking a backend pid', () => {
  it('pg_terminate_backend / pg_cancel_backend are refused unless routed to the backend’s shard', async () => {
    const c = await connect(transactionMode);
    expect(await codeOf(c.query('select pg_cancel_backend(2147483647)'))).toBe('0A000');
    const r = await c.query('/* shardgate: shard=1 */ select pg_cancel_backend(2147483647) as cancelled');
    expect(r.rows).toEqual([{ cancelled: false }]);
  });
});

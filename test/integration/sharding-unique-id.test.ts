// PgDog's pgdog.unique_id() on 2 real shards: the proxy puts an id of its own in place of each call before routing, so
// SELECT gives increasing bigints, an INSERT whose sharding key is a call lands on the shard that owns its id (checked
// on the shards directly), a named prepared statement gets new ids at every execution, compact ids stay below 2^53,
// and two proxies with different NODE_IDs never give the same id.
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { decodeUniqueId } from '../../src/sharding/unique-id.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { Frontend } from '../../src/protocol/codes.js';
import { SYNC } from '../../src/protocol/messages.js';
import { MessageWriter } from '../../src/protocol/writer.js';
import { directShardClients, USERS_ID, USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';
import { shardForLiteral } from '../../src/sharding/shard-of.js';

/** users (helpers/sharding.ts) and notes, both sharded by a bigint id. */
const SHARDING = `${USERS_SHARDING_TOML}
[[sharded_tables]]
database = "${APP_DB}"
name = "notes"
column = "id"
data_type = "bigint"
`;

let cluster: PgCluster;
/** NODE_ID shardgate-1 and shardgate-2 (standard layout), and shardgate-3 with the compact layout. */
let node1: TestProxy;
let node2: TestProxy;
let compact: TestProxy;
let direct: pg.Client[];
const open: pg.Client[] = [];

async function connect(proxy: TestProxy): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

/** The shards holding users row `id`, read on each shard directly. */
async function shardsHolding(id: string): Promise<number[]> {
  const out: number[] = [];
  for (const [shard, d] of direct.entries()) {
    if ((await d.query('select 1 from users where id = $1', [id])).rowCount === 1) out.push(shard);
  }
  return out;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  const start = (env: NodeJS.ProcessEnv, general = ''): Promise<TestProxy> =>
    startTestProxy(cluster, { extraPgdog: SHARDING, env, general });
  node1 = await start({ NODE_ID: 'shardgate-1' });
  node2 = await start({ NODE_ID: 'shardgate-2' });
  compact = await start({ NODE_ID: 'shardgate-3' }, 'unique_id_function = "compact"');
  direct = await directShardClients(cluster);
  await (await connect(node1)).query('create table users (id bigint primary key, name text not null)');
});

afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  for (const p of [node1, node2, compact]) await p?.close();
  await cluster?.stop();
});

describe('pgdog.unique_id()', () => {
  it('SELECT gives increasing bigints carrying the proxy’s node id; SHOW pgdog.unique_id too', async () => {
    const c = await connect(node1);
    const a = await c.query('select pgdog.unique_id()');
    const b = await c.query({ text: 'select pgdog.unique_id() as id, $1::text as tag', values: ['x'] });
    expect(a.fields[0]).toMatchObject({ name: 'int8', dataTypeID: 20 }); // as from PgDog (a bigint cast)
    const first = BigInt(a.rows[0].int8 as string);
    const second = BigInt(b.rows[0].id as string);
    expect(b.rows[0].tag).toBe('x');
    expect(second > first).toBe(true);
    expect(decodeUniqueId(first, 'standard').nodeId).toBe(1);
    expect(Math.abs(decodeUniqueId(first, 'standard').unixMs - Date.now())).toBeLessThan(60_000);
    const shown = await c.query('show pgdog.unique_id');
    expect(shown.fields[0]).toMatchObject({ name: 'unique_id', dataTypeID: 20 });
    expect(BigInt(shown.rows[0].unique_id as string) > second).toBe(true);
  });

  it('an INSERT with it as the sharding key lands on the shard that owns the id (simple and extended protocol)', async () => {
    const c = await connect(node1);
    const simple = await c.query(
      "insert into users (id, name) values (pgdog.unique_id(), 'ada') returning id",
    );
    const extended = await c.query({
      text: 'insert into users (id, name) values (pgdog.unique_id(), $1) returning id, name',
      values: ['bob'],
    });
    expect(extended.rows[0].name).toBe('bob');
    for (const id of [simple.rows[0].id as string, extended.rows[0].id as string]) {
      expect(await shardsHolding(id)).toEqual([userShard(BigInt(id))]);
    }
  });

  it('a named prepared statement executed 3 times gets 3 new ids, each on its own shard', async () => {
    const c = await connect(node1);
    const statement = {
      name: 'add_user',
      text: 'insert into users (id, name) values (pgdog.unique_id(), $1) returning id',
    };
    const ids: string[] = [];
    for (const name of ['cy', 'dee', 'eve'])
      ids.push((await c.query({ ...statement, values: [name] })).rows[0].id);
    expect(new Set(ids).size).toBe(3);
    expect(ids.map(BigInt)).toEqual([...ids.map(BigInt)].sort((x, y) => (x < y ? -1 : 1)));
    for (const id of ids) expect(await shardsHolding(id)).toEqual([userShard(BigInt(id))]);
    const stored = await c.query('select name from users where id = any($1::bigint[]) order by id', [ids]);
    expect(stored.rows.map((r) => r.name)).toEqual(['cy', 'dee', 'eve']);
  });

  it('a multi-row INSERT gets a new id per row, and its rows are split to their shards', async () => {
    const c = await connect(node1);
    const values = Array.from({ length: 20 }, (_, i) => `(pgdog.unique_id(), 'row${i}')`).join(', ');
    const r = await c.query(`insert into users (id, name) values ${values} returning id`);
    const ids = r.rows.map((row) => row.id as string);
    expect(new Set(ids).size).toBe(20);
    const shards = new Set<number>();
    for (const id of ids) {
      const holding = await shardsHolding(id);
      expect(holding).toEqual([userShard(BigInt(id))]);
      shards.add(holding[0]);
    }
    expect(shards.size).toBe(2); // 20 hashed ids fall on both shards (all on one: 2 times in 2^20)
  });

  it('an extended batch of INSERTs with it (executeBatch style) runs statement by statement, each row on its shard', async () => {
    const raw = await RawClient.connect(node1.port);
    try {
      await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const text = 'insert into users (id, name) values (pgdog.unique_id(), $1) returning id';
      const parse = new MessageWriter().cstring('').cstring(text).int16(0).frame(Frontend.Parse);
      const bind = (name: string): Buffer =>
        new MessageWriter()
          .cstring('')
          .cstring('')
          .int16(0)
          .int16(1)
          .int32(Buffer.byteLength(name))
          .bytes(Buffer.from(name))
          .int16(0)
          .frame(Frontend.Bind);
      const execute = new MessageWriter().cstring('').int32(0).frame(Frontend.Execute);
      const names = Array.from({ length: 20 }, (_, i) => `b${i}`); // 20 hashed ids: all on one shard 2 times in 2^20
      raw.write(Buffer.concat([...names.flatMap((n) => [parse, bind(n), execute]), SYNC]));
      const replies = await raw.readUntil('Z');
      expect(replies.map((m) => m.type).join('')).toBe('12DC'.repeat(names.length) + 'Z');
      const ids = replies.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6));
      expect(new Set(ids).size).toBe(names.length);
      const shards = new Set<number>();
      for (const id of ids) {
        const holding = await shardsHolding(id);
        expect(holding).toEqual([userShard(BigInt(id))]);
        shards.add(holding[0]);
      }
      expect(shards.size).toBe(2); // the batch needed both shards: it ran as a script
    } finally {
      raw.close();
    }
  });

  it('compact ids stay below 2^53 (exact JavaScript numbers) and carry node 3', async () => {
    const c = await connect(compact);
    for (let i = 0; i < 20; i++) {
      const id = BigInt((await c.query('select pgdog.unique_id() as id')).rows[0].id as string);
      expect(id < 2n ** 53n).toBe(true);
      expect(decodeUniqueId(id, 'compact').nodeId).toBe(3);
    }
  });

  it('two proxies with NODE_ID 1 and 2 give disjoint ids', async () => {
    const [a, b] = await Promise.all([connect(node1), connect(node2)]);
    const batch = 'select ' + Array.from({ length: 50 }, () => 'pgdog.unique_id()').join(', ');
    const ids = async (c: pg.Client): Promise<bigint[]> => {
      const out: bigint[] = [];
      for (let i = 0; i < 4; i++)
        out.push(...((await c.query({ text: batch, rowMode: 'array' })).rows[0] as string[]).map(BigInt));
      return out;
    };
    const [fromA, fromB] = await Promise.all([ids(a), ids(b)]);
    expect(new Set(fromA).size).toBe(200);
    expect(new Set(fromB).size).toBe(200);
    expect(fromA.filter((id) => fromB.includes(id))).toEqual([]);
    expect(new Set(fromA.map((id) => decodeUniqueId(id, 'standard').nodeId))).toEqual(new Set([1]));
    expect(new Set(fromB.map((id) => decodeUniqueId(id, 'standard').nodeId))).toEqual(new Set([2]));
  });

  it('postgres.js: its first INSERT into a new table (Parse and Describe first, Bind later) routes by the id', async () => {
    const sql = postgres(node2.url, { max: 1, onnotice: () => undefined });
    try {
      await sql`create table notes (id bigint primary key, body text not null)`;
      const rows: { id: string; body: string }[] = [];
      for (const body of ['one', 'two', 'three'])
        rows.push(
          ...(await sql<{ id: string; body: string }[]>`
          insert into notes (id, body) values (pgdog.unique_id(), ${body}) returning id, body`),
        );
      expect(rows.map((r) => r.body)).toEqual(['one', 'two', 'three']);
      expect(new Set(rows.map((r) => r.id)).size).toBe(3);
      for (const { id } of rows) {
        expect(decodeUniqueId(BigInt(id), 'standard').nodeId).toBe(2);
        const on = await Promise.all(direct.map((d) => d.query('select 1 from notes where id = $1', [id])));
        const notes = { ...USERS_ID, table: 'notes' };
        expect(on.map((r) => r.rowCount)).toEqual(
          [0, 1].map((s) => (s === shardForLiteral(notes, 2, id) ? 1 : 0)),
        );
      }
    } finally {
      await sql.end();
    }
  });

  it('SQL PREPARE … EXECUTE: each EXECUTE gets new ids (as PgDog appends them), each row on its shard', async () => {
    const c = await connect(node1);
    await c.query(
      'prepare add_user (text) as insert into users (id, name) values (pgdog.unique_id(), $1) returning id, name',
    );
    const ids: string[] = [];
    for (const name of ['sql-1', 'sql-2', 'sql-3', 'sql-4']) {
      const r = await c.query<{ id: string; name: string }>(`execute add_user('${name}')`);
      expect(r.rows[0].name).toBe(name);
      ids.push(r.rows[0].id);
    }
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(await shardsHolding(id)).toEqual([userShard(BigInt(id))]);
    // Without arguments; after DEALLOCATE the name is free for a statement without calls.
    await c.query('prepare next_id as select pgdog.unique_id() as id');
    const a = (await c.query<{ id: string }>('execute next_id')).rows[0].id;
    const b = (await c.query<{ id: string }>('execute next_id')).rows[0].id;
    expect(BigInt(b)).toBeGreaterThan(BigInt(a));
    await c.query('deallocate next_id');
    await c.query('prepare next_id as select 7 as id');
    expect((await c.query('execute next_id')).rows).toEqual([{ id: 7 }]);
    await c.query('deallocate all');
  });

  it('where rows of a query would share it, it is refused with 0A000; the session goes on', async () => {
    const c = await connect(node1);
    await expect(
      c.query('insert into notes (id, body) select pgdog.unique_id(), name from users'),
    ).rejects.toMatchObject({
      code: '0A000',
      message: expect.stringMatching(/every row would get the same id/),
    });
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });
});

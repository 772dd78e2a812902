// A single-shard request sent without Sync (pg-cursor / knex `.stream()`: Bind, Execute with a row limit, Flush)
// leaves its portal — and after an error, PostgreSQL's "skip to Sync" state — on that shard. The requests that follow
// it naming no statement (Execute / Close of the portal, Flush, the closing Sync) must reach that same shard: sent to
// another, the cursor failed with 34000 and the shard kept discarding input; given back to the pool like that, the
// next request on it lost its only ReadyForQuery to a BEGIN the proxy had put in front (knex `.returning('*')` in a
// transaction hung, and with it migrate.rollback() and destroy()).
import knexFactory, { type Knex } from 'knex';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { errorFields, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const REPEATS = 12;
let cluster: PgCluster;
let proxy: TestProxy;
let knex: Knex;

/** Two user ids on `shard`, the first ≥ `from`. */
function twoOn(shard: number, from: number): [number, number] {
  const a = idOn(shard, from);
  return [a, idOn(shard, a + 1)];
}

function types(messages: RawMessage[]): string {
  return messages.map((m) => m.type).join('');
}

/** Messages until `count` of type `type` have come (replies to a request without Sync end in no ReadyForQuery). */
async function readUntilCount(c: RawClient, type: string, count: number): Promise<RawMessage[]> {
  const out: RawMessage[] = [];
  let seen = 0;
  while (seen < count) {
    const m = await c.readMessage(3_000);
    out.push(m);
    if (m.type === type) seen++;
  }
  return out;
}

/** Open portal `portal` over the users `ids` (on one shard), fetching one row: Parse, Bind, Describe, Execute 1, Flush. */
function openCursor(portal: string, ids: number[]): Buffer {
  return Buffer.concat([
    serialize.parse({ text: 'select id from users where id = any($1::bigint[]) order by id', types: [] }),
    serialize.bind({ portal, values: [`{${ids.join(',')}}`] }),
    serialize.describe({ type: 'P', name: portal }),
    serialize.execute({ portal, rows: 1 }),
    serialize.flush(),
  ]);
}

async function loggedIn(): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  await c.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  return c;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  // One server per shard: the one a request poisons is the one every later request gets.
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, userExtra: 'pool_size = 1' });
  knex = knexFactory({ client: 'pg', connection: proxy.url, pool: { min: 0, max: 1 } });
  await knex.raw('create table users (id bigint primary key, name text not null)');
  const ids = [...twoOn(0, 100), ...twoOn(1, 100)];
  await knex('users').insert(ids.map((id) => ({ id, name: `u${id}` })));
});

afterAll(async () => {
  await knex?.destroy();
  await proxy?.close();
  await cluster?.stop();
});

describe('requests after one sent without Sync follow it to its shard', () => {
  it.each([0, 1])(
    'a cursor pinned to shard %i is fetched, closed and synced on that shard',
    async (shard) => {
      const ids = twoOn(shard, 100);
      const c = await loggedIn();
      try {
        c.write(openCursor('c1', ids));
        expect(types(await readUntilCount(c, 's', 1))).toBe('12TDs');
        for (let i = 0; i < 2; i++) {
          // Two more fetches (a round-robin shard would be wrong for one of them: 34000 portal "c1" does not exist).
          c.write(Buffer.concat([serialize.execute({ portal: 'c1', rows: 1 }), serialize.flush()]));
          const fetched = await c.readMessage(3_000);
          if (fetched.type === 'E') throw new Error(`fetch ${i + 2}: ${errorFields(fetched.body).M}`);
          expect(fetched.type).toBe(i === 0 ? 'D' : 'C');
          if (i === 0) expect((await c.readMessage(3_000)).type).toBe('s');
        }
        c.write(Buffer.concat([serialize.close({ type: 'P', name: 'c1' }), serialize.sync()]));
        expect(types(await c.readUntil('Z'))).toBe('3Z');
      } finally {
        c.close();
      }
    },
  );

  it.each([0, 1])(
    'after an error in a request without Sync on shard %i, the Sync reaches it and the next transaction is answered',
    async (shard) => {
      const [id] = twoOn(shard, 100);
      const fresh = idOn(shard, 5_000);
      const c = await loggedIn();
      try {
        c.write(openCursor('c2', [id]));
        expect(types(await readUntilCount(c, 's', 1))).toBe('12TDs');
        c.write(Buffer.concat([serialize.execute({ portal: 'no_such_portal' }), serialize.flush()]));
        const err = await c.readMessage(3_000);
        expect(err.type).toBe('E');
        expect(errorFields(err.body).C).toBe('34000');
        c.write(serialize.sync()); // ends the failed segment — on the shard where it failed
        expect(types(await c.readUntil('Z'))).toBe('Z');
        // A transaction reaching that shard: the proxy opens it there with a BEGIN of its own, then the INSERT.
        expect(types(await c.query('begin'))).toBe('CZ');
        c.write(
          Buffer.concat([
            serialize.parse({ text: 'insert into users (id, name) values ($1, $2) returning *', types: [] }),
            serialize.bind({ values: [String(fresh), 'fresh'] }),
            serialize.describe({ type: 'P', name: '' }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        expect(types(await c.readUntil('Z'))).toBe('12TDCZ');
        expect(types(await c.query('rollback'))).toBe('CZ');
      } finally {
        c.close();
      }
    },
  );

  it(`knex: pinned streams (one failing) and .returning('*') in transactions on both shards, ${REPEATS} times`, async () => {
    const within = <T>(p: Promise<T>, what: string): Promise<T> =>
      Promise.race([
        p,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer: ${what}`)), 5_000)),
      ]);
    for (let i = 0; i < REPEATS; i++) {
      const shard = i % 2;
      const pinned = twoOn(shard, 100);
      const streamed: number[] = [];
      for await (const row of knex('users').whereIn('id', pinned).orderBy('id').select('id').stream({
        highWaterMark: 1,
      }))
        streamed.push(Number((row as { id: string }).id));
      expect(streamed).toEqual(pinned);
      // A pinned cursor that fails on its second batch (division by zero on the second row).
      const failing = knex
        .select(knex.raw('id / (id - ?) as q', [pinned[1]]))
        .from('users')
        .whereIn('id', pinned)
        .orderBy('id')
        .stream({ highWaterMark: 1 });
      await expect(
        within(
          (async () => {
            for await (const _ of failing);
          })(),
          `failing stream ${i}`,
        ),
      ).rejects.toThrow('division by zero');
      for (const s of [0, 1]) {
        const id = idOn(s, 10_000 + i * 100);
        const rows = await within(
          knex.transaction(async (trx) => [
            ...(await trx('users').insert({ id, name: 'a' }).returning('*')),
            ...(await trx('users').where({ id }).update({ name: 'b' }).returning('*')),
            ...(await trx('users').where({ id }).del().returning('*')),
          ]),
          `returning in a transaction on shard ${s}, round ${i}`,
        );
        expect(rows.map((r) => r.name)).toEqual(['a', 'b', 'b']);
      }
    }
  });

  it.each([0, 1])(
    'a shard left mid-segment by a request the proxy refused itself (shard %i) is not handed to anyone else',
    async (shard) => {
      const ids = twoOn(shard, 100);
      const c = await loggedIn();
      try {
        c.write(openCursor('c3', ids));
        expect(types(await readUntilCount(c, 's', 1))).toBe('12TDs');
        // An error there: the shard now skips everything until a Sync.
        c.write(Buffer.concat([serialize.execute({ portal: 'no_such_portal' }), serialize.flush()]));
        expect(errorFields((await c.readMessage(3_000)).body).C).toBe('34000');
        // Refused by the proxy (CALL cannot be routed): its error, and the Sync is answered by the proxy, not the shard.
        c.write(
          Buffer.concat([
            serialize.parse({ text: 'call nothing()', types: [] }),
            serialize.bind({}),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        const refused = await c.readUntil('Z');
        expect(errorFields(refused.find((m) => m.type === 'E')?.body ?? Buffer.alloc(0)).C).toBe('0A000');
        // The same session goes on: a transaction on that shard is answered (the shard got the refused request's Sync).
        expect(types(await c.query('begin'))).toBe('CZ');
        c.write(
          Buffer.concat([
            serialize.parse({ text: 'insert into users (id, name) values ($1, $2) returning *', types: [] }),
            serialize.bind({ values: [String(idOn(shard, 30_000)), 'same session'] }),
            serialize.describe({ type: 'P', name: '' }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        expect(types(await c.readUntil('Z'))).toBe('12TDCZ');
        expect(types(await c.query('rollback'))).toBe('CZ');
      } finally {
        c.close();
      }
      // The shard's one pooled server must not come back still holding that segment: each request below is answered.
      for (let i = 0; i < 3; i++) {
        const id = idOn(shard, 20_000 + i * 10);
        const rows = await knex.transaction(async (trx) =>
          trx('users').insert({ id, name: 'after' }).returning('*'),
        );
        expect(rows.map((r: { name: string }) => r.name)).toEqual(['after']);
      }
    },
  );

  it('inside a transaction, the shard left mid-segment by a refused request gets its Sync: the next request is answered', async () => {
    const ids = twoOn(1, 100);
    const c = await loggedIn();
    try {
      expect(types(await c.query('begin'))).toBe('CZ');
      c.write(openCursor('c4', ids));
      expect(types(await readUntilCount(c, 's', 1))).toBe('12TDs');
      c.write(Buffer.concat([serialize.execute({ portal: 'no_such_portal' }), serialize.flush()]));
      expect(errorFields((await c.readMessage(3_000)).body).C).toBe('34000');
      c.write(
        Buffer.concat([
          serialize.parse({ text: 'call nothing()', types: [] }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      await c.readUntil('Z');
      // The shard's transaction failed (its 34000): PostgreSQL answers 25P02 — an answer, not silence.
      c.write(
        Buffer.concat([
          serialize.parse({ text: 'select 1 from users where id = $1', types: [] }),
          serialize.bind({ values: [String(ids[0])] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const answer = await c.readUntil('Z');
      expect(errorFields(answer.find((m) => m.type === 'E')?.body ?? Buffer.alloc(0)).C).toBe('25P02');
      expect(types(await c.query('rollback'))).toBe('CZ');
    } finally {
      c.close();
    }
  });
});

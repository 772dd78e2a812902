// pgdog.unique_id() on a database with one shard and a real streaming replica (issue 12): as through PgDog, whose query
// parser is on when a database has replicas, the proxy puts its own ids in place of the calls — in reads (which may go
// to the replica) and in writes, simple and extended protocol, SQL PREPARE / EXECUTE (also sent in a Parse); a
// Describe lists the client's parameters only (as PostgreSQL does for the statement without the call) — while the same database
// without replicas passes the call to PostgreSQL as written (3F000: no schema pgdog).
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { decodeUniqueId } from '../../src/sharding/unique-id.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

describe.skipIf(isExternal)('pgdog.unique_id() on one shard with a replica', () => {
  let cluster: PgCluster;
  let withReplica: TestProxy;
  let primaryOnly: TestProxy;
  const clients: pg.Client[] = [];

  async function connect(proxy: TestProxy): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: proxy.url });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    const replica = cluster.servers[await cluster.addReplica(0)];
    withReplica = await startTestProxy(cluster, {
      shards: 1,
      env: { NODE_ID: 'shardgate-5' },
      general: 'load_balancing_strategy = "round_robin"',
      extraPgdog: `[[databases]]\nname = "${APP_DB}"\nhost = "${replica.host}"\nport = ${replica.port}\ndatabase_name = "${APP_DB}"\nrole = "replica"\n`,
    });
    primaryOnly = await startTestProxy(cluster, { shards: 1, env: { NODE_ID: 'shardgate-6' } });
    await (
      await connect(withReplica)
    ).query('create table notes (id bigint primary key, body text not null)');
  });

  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await withReplica?.close();
    await primaryOnly?.close();
    await cluster?.stop();
  });

  it('reads get new ids of this proxy’s node, on the primary and on the replica', async () => {
    const c = await connect(withReplica);
    const ids: bigint[] = [];
    const places: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await c.query<{ id: string; r: boolean }>(
        i % 2 === 0
          ? 'select pgdog.unique_id() as id, pg_is_in_recovery() as r'
          : { text: 'select pgdog.unique_id() as id, pg_is_in_recovery() as r, $1::int as i', values: [i] },
      );
      ids.push(BigInt(r.rows[0].id));
      places.push(r.rows[0].r);
    }
    expect(places).toContain(true); // round_robin: some ran on the replica
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
    for (const id of ids) expect(decodeUniqueId(id, 'standard').nodeId).toBe(5);
  });

  it('writes get new ids: simple Query, a named statement run twice, SQL PREPARE / EXECUTE', async () => {
    const c = await connect(withReplica);
    const simple = await c.query<{ id: string }>(
      "insert into notes (id, body) values (pgdog.unique_id(), 'simple') returning id",
    );
    const named: string[] = [];
    for (const body of ['named 1', 'named 2']) {
      const r = await c.query<{ id: string }>({
        name: 'add_note',
        text: 'insert into notes (id, body) values (pgdog.unique_id(), $1) returning id',
        values: [body],
      });
      named.push(r.rows[0].id);
    }
    await c.query(
      'prepare add (text) as insert into notes (id, body) values (pgdog.unique_id(), $1) returning id',
    );
    const executed = [
      (await c.query<{ id: string }>("execute add('sql 1')")).rows[0].id,
      (await c.query<{ id: string }>("execute add('sql 2')")).rows[0].id,
    ];
    const all = [simple.rows[0].id, ...named, ...executed];
    expect(new Set(all).size).toBe(5);
    for (const id of all) expect(decodeUniqueId(BigInt(id), 'standard').nodeId).toBe(5);
    const stored = await c.query<{ n: number }>(
      'select count(*)::int as n from notes where id = any($1::bigint[])',
      [all],
    );
    expect(stored.rows[0].n).toBe(5);
  });

  it('a Describe lists the client’s parameters only; PREPARE and EXECUTE sent in a Parse get new ids', async () => {
    const viaProxy = postgres(withReplica.url, { max: 1, onnotice: () => undefined });
    const [primary] = cluster.servers;
    const onPrimary = postgres({
      host: primary.host,
      port: primary.port,
      user: APP_USER,
      pass: APP_PASSWORD,
      database: APP_DB,
      max: 1,
      onnotice: () => undefined,
    });
    const extended = { prepare: false, simple: false } as postgres.UnsafeQueryOptions; // `simple`: read at run time
    try {
      const body = 'described';
      const described = await viaProxy`
        insert into notes (id, body) values (pgdog.unique_id(), ${body}) returning id`.describe();
      const plain =
        await onPrimary`insert into notes (id, body) values (1::bigint, ${body}) returning id`.describe();
      expect(plain.types).toEqual([25]);
      expect(described.types).toEqual(plain.types);
      const inserted = await viaProxy<{ id: string }[]>`
        insert into notes (id, body) values (pgdog.unique_id(), ${body}) returning id`;
      expect(decodeUniqueId(BigInt(inserted[0].id), 'standard').nodeId).toBe(5);
      await viaProxy.unsafe(
        'prepare add_ext (text) as insert into notes (id, body) values (pgdog.unique_id(), $1) returning id',
        [],
        extended,
      );
      const ids: string[] = [];
      for (const n of ['ext 1', 'ext 2', 'ext 3'])
        ids.push((await viaProxy.unsafe<{ id: string }[]>(`execute add_ext('${n}')`, [], extended))[0].id);
      expect(new Set(ids).size).toBe(3);
      for (const id of ids) expect(decodeUniqueId(BigInt(id), 'standard').nodeId).toBe(5);
      await viaProxy.unsafe('deallocate add_ext', [], extended);
    } finally {
      await viaProxy.end();
      await onPrimary.end();
    }
  });

  it('refuses a call every row of a query would share (0A000), and the session goes on', async () => {
    const c = await connect(withReplica);
    await expect(c.query('select pgdog.unique_id() from notes')).rejects.toMatchObject({ code: '0A000' });
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('without replicas the call reaches PostgreSQL as written (no schema pgdog: 3F000)', async () => {
    const c = await connect(primaryOnly);
    await expect(c.query('select pgdog.unique_id()')).rejects.toMatchObject({ code: '3F000' });
  });
});

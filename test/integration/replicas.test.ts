// Read/write split on a database with one shard: a real streaming replica (pg_basebackup -R) beside its primary.
// Reads spread per load_balancing_strategy, writes and write transactions reach only the primary, BEGIN READ ONLY
// may use the replica, manual overrides work, and a replica that goes away is banned without losing later queries.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

function replicaEntry(cluster: PgCluster, index: number): string {
  const s = cluster.servers[index];
  return `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nrole = "replica"\n`;
}

async function connect(proxy: TestProxy): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: proxy.url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Where a statement ran: true on the replica (in recovery), false on the primary (the one result with column r). */
async function onReplica(client: pg.Client, sql = 'SELECT pg_is_in_recovery() AS r'): Promise<boolean> {
  const result: pg.QueryResult | pg.QueryResult[] = await client.query(sql);
  const results = Array.isArray(result) ? result : [result];
  const withR = results.find((r) => r.fields?.some((f: pg.FieldDef) => f.name === 'r'));
  if (withR === undefined) throw new Error(`no column r in the results of ${sql}`);
  return (withR.rows[0] as { r: boolean }).r;
}

async function waitForReplay(client: pg.Client, sql: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      if ((await client.query(sql)).rowCount !== 0) return;
    } catch {
      // not replayed yet (the table is not there)
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`not replayed in time: ${sql}`);
}

describe.skipIf(isExternal)('replicas: read/write split (one shard)', () => {
  let cluster: PgCluster;
  let replicaIndex: number;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    replicaIndex = await cluster.addReplica(0);
    const setup = new pg.Client({
      host: cluster.servers[0].host,
      port: cluster.servers[0].port,
      user: APP_SERVER_OPTIONS.users[0].name,
      password: APP_SERVER_OPTIONS.users[0].password,
      database: APP_DB,
    });
    await setup.connect();
    await setup.query('CREATE TABLE items (id int PRIMARY KEY, v text)');
    await setup.end();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('round_robin with the primary included: reads alternate, writes stay on the primary', async () => {
    const proxy = await startTestProxy(cluster, {
      shards: 1,
      general: 'load_balancing_strategy = "round_robin"',
      extraPgdog: replicaEntry(cluster, replicaIndex),
    });
    const client = await connect(proxy);
    try {
      const simple: boolean[] = [];
      for (let i = 0; i < 10; i++) simple.push(await onReplica(client));
      expect(simple.filter((r) => r)).toHaveLength(5);
      const extended: boolean[] = [];
      for (let i = 0; i < 10; i++)
        extended.push(
          (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r, $1::int AS i', [i])).rows[0]
            .r,
        );
      expect(extended.filter((r) => r)).toHaveLength(5);
      for (let i = 0; i < 6; i++) {
        const { rows } = await client.query<{ r: boolean }>(
          'INSERT INTO items VALUES ($1, $2) RETURNING pg_is_in_recovery() AS r',
          [100 + i, 'rr'],
        );
        expect(rows[0].r).toBe(false);
      }
    } finally {
      await client.end();
      await proxy.close();
    }
  });

  describe('exclude_primary', () => {
    let proxy: TestProxy;
    let client: pg.Client;
    beforeAll(async () => {
      proxy = await startTestProxy(cluster, {
        shards: 1,
        general: 'read_write_split = "exclude_primary"\nban_timeout = 5000',
        extraPgdog: replicaEntry(cluster, replicaIndex),
      });
      client = await connect(proxy);
    });
    afterAll(async () => {
      await client?.end();
      await proxy?.close();
    });

    it('sends every read to the replica and every write to the primary', async () => {
      for (let i = 0; i < 5; i++) expect(await onReplica(client)).toBe(true);
      await client.query("INSERT INTO items VALUES (1, 'written')");
      await waitForReplay(client, 'SELECT 1 FROM items WHERE id = 1');
      const { rows } = await client.query<{ v: string }>('SELECT v FROM items WHERE id = $1', [1]);
      expect(rows).toEqual([{ v: 'written' }]);
      // Locking reads, writing CTEs and nextval() need the primary (the replica would answer 25006).
      expect(
        await onReplica(client, 'SELECT pg_is_in_recovery() AS r FROM items WHERE id = 1 FOR UPDATE'),
      ).toBe(false);
      expect(
        await onReplica(
          client,
          "WITH w AS (UPDATE items SET v = 'cte' WHERE id = 1 RETURNING id) SELECT pg_is_in_recovery() AS r FROM w",
        ),
      ).toBe(false);
    });

    it('keeps transactions on the primary unless they are READ ONLY', async () => {
      await client.query('BEGIN');
      expect(await onReplica(client)).toBe(false);
      await client.query('COMMIT');
      await client.query('BEGIN READ ONLY');
      expect(await onReplica(client)).toBe(true);
      expect(await onReplica(client)).toBe(true);
      await client.query('COMMIT');
      expect(
        await onReplica(client, 'START TRANSACTION READ ONLY; SELECT pg_is_in_recovery() AS r; COMMIT'),
      ).toBe(true);
      expect(
        await onReplica(client, 'BEGIN; SET TRANSACTION READ ONLY; SELECT pg_is_in_recovery() AS r; COMMIT'),
      ).toBe(true);
    });

    it('follows /* pgdog_role: primary */ and SET pgdog.role', async () => {
      expect(await onReplica(client, '/* pgdog_role: primary */ SELECT pg_is_in_recovery() AS r')).toBe(
        false,
      );
      await client.query("SET pgdog.role = 'primary'");
      expect(await onReplica(client)).toBe(false);
      expect(await onReplica(client, '/* pgdog_role: replica */ SELECT pg_is_in_recovery() AS r')).toBe(true);
      await client.query('RESET pgdog.role');
      expect(await onReplica(client)).toBe(true);
    });

    it(
      'bans a replica that went away: no later query fails, and reads come back after ban_timeout',
      {
        timeout: 60_000,
      },
      async () => {
        if (cluster.stopOne === undefined || cluster.startOne === undefined) throw new Error('local cluster');
        expect(await onReplica(client)).toBe(true);
        await cluster.stopOne(replicaIndex); // its postmaster's pid, fast shutdown
        // The idle pooled connection said FATAL and is dropped; a new one cannot connect: banned, the primary answers.
        const bannedAt = Date.now();
        for (let i = 0; i < 5; i++) expect(await onReplica(client)).toBe(false);
        await cluster.startOne(replicaIndex);
        expect(Date.now() - bannedAt).toBeLessThan(4_000); // else the ban below may have ended (a very slow machine)
        expect(await onReplica(client)).toBe(false); // up again, but still banned
        await new Promise((resolve) => setTimeout(resolve, bannedAt + 5_100 - Date.now()));
        expect(await onReplica(client)).toBe(true);
      },
    );
  });
});

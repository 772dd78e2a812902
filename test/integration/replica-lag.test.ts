// The replay-LSN monitor against a real streaming replica: with replay paused (pg_wal_replay_pause()) and the
// primary writing, the replica trails by more than ban_replica_lag_bytes (or for longer than ban_replica_lag) and is
// banned — reads go to the primary, SHOW BANS says why — and once replay resumes it is unbanned at the next check,
// long before ban_timeout.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

function replicaEntry(cluster: PgCluster, index: number): string {
  const s = cluster.servers[index];
  return `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nrole = "replica"\n`;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function onReplica(client: pg.Client): Promise<boolean> {
  return (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(isExternal)('replay-LSN monitor: ban_replica_lag / ban_replica_lag_bytes', () => {
  let cluster: PgCluster;
  let replicaIndex: number;
  let primary: pg.Client;
  /** The replica as its superuser (pg_wal_replay_pause / resume). */
  let replicaSu: pg.Client;
  let admin: pg.Client;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    replicaIndex = await cluster.addReplica(0);
    const p = cluster.servers[0];
    primary = await connect(`postgres://${APP_USER}:${APP_PASSWORD}@${p.host}:${p.port}/${APP_DB}`);
    await primary.query('CREATE TABLE filler (id serial PRIMARY KEY, pad text)');
    const r = cluster.servers[replicaIndex];
    replicaSu = await connect(
      `postgres://${encodeURIComponent(r.superuser)}:${encodeURIComponent(r.superuserPassword)}@${r.host}:${r.port}/postgres`,
    );
  }, 60_000);
  afterAll(async () => {
    await primary?.end();
    await replicaSu?.end();
    await cluster?.stop();
  });

  async function startProxy(general: string): Promise<TestProxy> {
    const proxy = await startTestProxy(cluster, {
      shards: 1,
      general: `read_write_split = "include_primary_if_replica_banned"\nlsn_check_delay = 0\nlsn_check_interval = 200\nban_timeout = 120000\n${general}`,
      extraPgdog: replicaEntry(cluster, replicaIndex),
    });
    admin = await connect(`postgres://admin:admin@127.0.0.1:${proxy.port}/admin`);
    return proxy;
  }

  async function bans(): Promise<{ ban_reason: string }[]> {
    return (await admin.query<{ ban_reason: string }>('SHOW BANS')).rows;
  }

  it('bans a replica trailing by ban_replica_lag_bytes, and lifts the ban once it has caught up', async () => {
    const proxy = await startProxy('ban_replica_lag_bytes = 1000000');
    const client = await connect(proxy.url);
    try {
      await waitFor(() => onReplica(client), 'a read on the replica');
      // Replay paused, ~3 MB of WAL on the primary: the replica is ~3 MB behind.
      await replicaSu.query('SELECT pg_wal_replay_pause()');
      await primary.query("INSERT INTO filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, 3000)");
      await waitFor(async () => (await bans()).length === 1, 'the lag ban');
      expect((await bans())[0].ban_reason).toMatch(/replica lag of \d+ bytes reached ban_replica_lag_bytes/);
      for (let i = 0; i < 5; i++) expect(await onReplica(client)).toBe(false);
      // Caught up: unbanned at the next check (ban_timeout is 2 minutes).
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      const ms = await waitFor(async () => (await bans()).length === 0, 'the lag ban lifted', 5_000);
      expect(ms).toBeLessThan(5_000);
      await waitFor(() => onReplica(client), 'a read on the replica again');
    } finally {
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      await client.end();
      await admin.end();
      await proxy.close();
    }
  });

  it('bans a replica trailing for ban_replica_lag ms; a caught-up replica of an idle primary is not banned', async () => {
    const proxy = await startProxy('ban_replica_lag = 1000');
    const client = await connect(proxy.url);
    try {
      // Caught up and the primary idle: no ban however old its last commit is.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await bans()).toEqual([]);
      await replicaSu.query('SELECT pg_wal_replay_pause()');
      const pausedAt = Date.now();
      await primary.query("INSERT INTO filler (pad) VALUES ('one row')");
      await waitFor(async () => (await bans()).length === 1, 'the lag ban');
      expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(1_000);
      expect((await bans())[0].ban_reason).toMatch(
        /replica lag of \d+ ms reached ban_replica_lag \(1000 ms\)/,
      );
      expect(await onReplica(client)).toBe(false);
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      await waitFor(async () => (await bans()).length === 0, 'the lag ban lifted', 5_000);
    } finally {
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      await client.end();
      await admin.end();
      await proxy.close();
    }
  });
});

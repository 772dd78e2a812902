// The replay-LSN monitor against a real streaming replica: with replay paused (pg_wal_replay_pause()) and the
// primary writing, the replica trails by more than ban_replica_lag_bytes (or for longer than ban_replica_lag) and is
// banned — reads go to the primary, SHOW BANS says why — and once replay resumes it is unbanned at the next check,
// long before ban_timeout. SHOW REPLICATION and the shardgate_replica_lag_bytes / _seconds gauges report the lag the
// monitor measured, per replica, and the replay position the replica itself reports.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import {
  connect,
  databaseEntry,
  direct,
  directSuperuser,
  hasNoLocalServers,
  metric,
  onReplica,
  startClusterWithReplicas,
  waitFor,
} from '../helpers/replicas.js';

describe.skipIf(hasNoLocalServers)('replay-LSN monitor: ban_replica_lag / ban_replica_lag_bytes', () => {
  let cluster: PgCluster;
  let replicaIndex: number;
  let primary: pg.Client;
  /** The replica as its superuser (pg_wal_replay_pause / resume). */
  let replicaSu: pg.Client;
  let admin: pg.Client;

  beforeAll(async () => {
    const started = await startClusterWithReplicas(1);
    cluster = started.cluster;
    replicaIndex = started.replicaOf[0];
    primary = await direct(cluster, 0);
    await primary.query('CREATE TABLE filler (id serial PRIMARY KEY, pad text)');
    replicaSu = await directSuperuser(cluster, replicaIndex);
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
      extraPgdog: databaseEntry(cluster, replicaIndex, 'replica'),
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

  it('SHOW REPLICATION and the lag gauges report each replica’s replay lag in bytes and seconds, 0 once caught up', async () => {
    const proxy = await startProxy('openmetrics_port = 0');
    const metricsPort = proxy.proxy.metricsPort as number;
    const r = cluster.servers[replicaIndex];
    const labels = { database: 'app', shard: '0', host: r.host, port: String(r.port) };
    interface Row {
      role: string;
      port: string;
      replica_lag: string | null;
      replica_lag_bytes: string | null;
      pg_lsn: string | null;
      pg_is_in_recovery: boolean | null;
    }
    const rows = async (): Promise<Row[]> => (await admin.query<Row>('SHOW REPLICATION')).rows;
    const replicaRow = async (): Promise<Row> => {
      const row = (await rows()).find((x) => x.role === 'replica');
      if (row === undefined) throw new Error('no replica row in SHOW REPLICATION');
      return row;
    };
    const client = await connect(proxy.url); // the pools (and their monitor) exist once a client has logged in
    try {
      await waitFor(
        async () => (await replicaRow()).pg_is_in_recovery === true,
        'a first replay-LSN reading',
      );
      const primaryRow = (await rows()).find((x) => x.role === 'primary');
      expect(primaryRow).toMatchObject({ port: String(cluster.servers[0].port), pg_is_in_recovery: false });
      expect(primaryRow?.pg_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      await waitFor(async () => (await replicaRow()).replica_lag_bytes === '0', 'a caught-up reading');
      expect(await metric(metricsPort, 'shardgate_replica_lag_bytes', labels)).toBe(0);
      // Replay paused, ~3 MB written: the lag grows in bytes, and in time while the replica stays behind.
      await replicaSu.query('SELECT pg_wal_replay_pause()');
      await primary.query("INSERT INTO filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, 3000)");
      await waitFor(
        async () => Number((await replicaRow()).replica_lag_bytes) > 1_000_000,
        'SHOW REPLICATION showing the replica 1 MB behind',
      );
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const behind = await replicaRow();
      expect(Number(behind.replica_lag)).toBeGreaterThanOrEqual(1_000);
      // The position shown is the one the paused replica reports itself.
      const replay = await replicaSu.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
      expect(behind.pg_lsn).toBe(replay.rows[0].lsn);
      expect(await metric(metricsPort, 'shardgate_replica_lag_bytes', labels)).toBeGreaterThan(1_000_000);
      expect(await metric(metricsPort, 'shardgate_replica_lag_seconds', labels)).toBeGreaterThanOrEqual(1);
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      await waitFor(async () => (await replicaRow()).replica_lag_bytes === '0', 'the lag back to 0');
      expect((await replicaRow()).replica_lag).toBe('0');
      expect(await metric(metricsPort, 'shardgate_replica_lag_bytes', labels)).toBe(0);
      expect(await metric(metricsPort, 'shardgate_replica_lag_seconds', labels)).toBe(0);
    } finally {
      await replicaSu.query('SELECT pg_wal_replay_resume()');
      await client.end();
      await admin.end();
      await proxy.close();
    }
  });
});

// Replica health checks, bans and their admin commands and metrics, against a real streaming replica: a stopped
// replica is banned by the idle health check without any client query, SHOW BANS lists it, reads go on on the
// primary, UNBAN clears it; BAN / UNBAN / HEALTHCHECK by pool id answer as documented; the counters are exported.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { metric } from '../helpers/replicas.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

type Row = Record<string, unknown>;

async function connect(config: string | pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(typeof config === 'string' ? { connectionString: config } : config);
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function onReplica(client: pg.Client): Promise<boolean> {
  return (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r;
}

/** Poll `read` until `isDone` (at most 15 s). */
async function eventually<T>(read: () => Promise<T>, isDone: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = await read();
    if (isDone(v) || Date.now() > deadline) return v;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(isExternal)('replica health checks and bans', () => {
  let cluster: PgCluster;
  let replicaIndex: number;
  let proxy: TestProxy;
  let admin: pg.Client;
  let client: pg.Client;
  let metricsPort: number;

  const rows = async (sql: string): Promise<Row[]> => (await admin.query<Row>(sql)).rows;
  const replicaPool = async (): Promise<Row> =>
    (await rows('SHOW POOLS')).find((r) => r.database === APP_DB && r.role === 'replica') as Row;
  const primaryPool = async (): Promise<Row> =>
    (await rows('SHOW POOLS')).find((r) => r.database === APP_DB && r.role === 'primary') as Row;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    replicaIndex = await cluster.addReplica(0);
    const r = cluster.servers[replicaIndex];
    proxy = await startTestProxy(cluster, {
      shards: 1,
      general: [
        'read_write_split = "exclude_primary"',
        'ban_timeout = 600000', // long: only UNBAN ends a ban here
        'idle_healthcheck_delay = 0',
        'idle_healthcheck_interval = 100',
        'healthcheck_timeout = 2000',
        'openmetrics_port = 0',
      ].join('\n'),
      extraPgdog: `[[databases]]\nname = "${APP_DB}"\nhost = "${r.host}"\nport = ${r.port}\ndatabase_name = "${APP_DB}"\nrole = "replica"\n`,
    });
    metricsPort = proxy.proxy.metricsPort as number;
    admin = await connect({
      host: '127.0.0.1',
      port: proxy.port,
      user: 'admin',
      password: 'admin',
      database: 'admin',
    });
    client = await connect(proxy.url);
  }, 120_000);
  afterAll(async () => {
    await client?.end();
    await admin?.end();
    await proxy?.close();
    await cluster?.stop();
  });

  it('SHOW POOLS and SHOW SERVERS list the replica pool with its role', async () => {
    expect(await onReplica(client)).toBe(true);
    const pools = (await rows('SHOW POOLS')).filter((r) => r.database === APP_DB);
    expect(pools.map((p) => p.role)).toEqual(['primary', 'replica']);
    expect(pools[1]).toMatchObject({ port: String(cluster.servers[replicaIndex].port), banned: false });
    expect(pools[0].id).not.toBe(pools[1].id);
    const servers = (await rows('SHOW SERVERS')).filter((s) => s.database === APP_DB);
    const onReplicaPool = servers.filter((s) => s.pool_id === pools[1].id);
    expect(onReplicaPool.length).toBeGreaterThanOrEqual(1);
    expect(onReplicaPool.every((s) => s.role === 'replica')).toBe(true);
    expect(await rows('SHOW BANS')).toEqual([]);
  });

  it('HEALTHCHECK checks every pool now and answers a row per pool', async () => {
    const before = await metric(metricsPort, 'shardgate_healthchecks_total', { database: APP_DB });
    const result = await admin.query<Row>('HEALTHCHECK');
    expect(result.command).toBe('HEALTHCHECK');
    const mine = result.rows.filter((r) => r.database === APP_DB);
    expect(mine.map((r) => [r.role, r.healthy, r.error, r.banned])).toEqual([
      ['primary', true, null, false],
      ['replica', true, null, false],
    ]);
    expect(
      await metric(metricsPort, 'shardgate_healthchecks_total', { database: APP_DB }),
    ).toBeGreaterThanOrEqual(before + 2);
    const [stats] = (await rows('SHOW STATS')).filter((r) => r.database === APP_DB);
    expect(Number(stats.total_healthchecks)).toBeGreaterThanOrEqual(before + 2);
    expect(Number(stats.replica_query_count)).toBeGreaterThanOrEqual(1);
    expect(Number(stats.replica_query_count)).toBeLessThan(Number(stats.total_query_count));
  });

  it('BAN and UNBAN by pool id; the primary is never banned; unknown ids are errors', async () => {
    const replica = await replicaPool();
    const primary = await primaryPool();
    const banned = await admin.query(`BAN ${String(replica.id)}`);
    expect(banned.command).toBe('BAN');
    const bans = await rows('SHOW BANS');
    expect(bans).toEqual([
      {
        id: replica.id,
        database: APP_DB,
        user: 'app',
        addr: cluster.servers[replicaIndex].host,
        port: String(cluster.servers[replicaIndex].port),
        shard: '0',
        role: 'replica',
        ban_reason: 'banned by the admin console (BAN)',
        ban_time_left: null,
      },
    ]);
    expect(await onReplica(client)).toBe(false); // every replica banned: the primary answers
    await expect(admin.query(`BAN ${String(primary.id)}`)).rejects.toMatchObject({ code: '55000' });
    await expect(admin.query('UNBAN 999999')).rejects.toMatchObject({ code: '42704' });
    await admin.query(`UNBAN ${String(replica.id)}`);
    expect(await rows('SHOW BANS')).toEqual([]);
    expect(await onReplica(client)).toBe(true);
  });

  it('checks a replica server before checkout at most every healthcheck_interval (0: every time)', async () => {
    const r = cluster.servers[replicaIndex];
    const replicaEntry = `[[databases]]\nname = "${APP_DB}"\nhost = "${r.host}"\nport = ${r.port}\ndatabase_name = "${APP_DB}"\nrole = "replica"\n`;
    const checksAfterReads = async (interval: number): Promise<number> => {
      const other = await startTestProxy(cluster, {
        shards: 1,
        general: `read_write_split = "exclude_primary"\nidle_healthcheck_interval = 0\nhealthcheck_interval = ${interval}\nopenmetrics_port = 0`,
        extraPgdog: replicaEntry,
      });
      const c = await connect(other.url);
      try {
        const port = other.proxy.metricsPort as number;
        expect(await onReplica(c)).toBe(true); // opens the replica connection (fresh: healthy, not checked)
        const before = await metric(port, 'shardgate_healthchecks_total', { database: APP_DB });
        for (let i = 0; i < 5; i++) expect(await onReplica(c)).toBe(true);
        expect(await metric(port, 'shardgate_healthcheck_failures_total', { database: APP_DB })).toBe(0);
        return (await metric(port, 'shardgate_healthchecks_total', { database: APP_DB })) - before;
      } finally {
        await c.end();
        await other.close();
      }
    };
    expect(await checksAfterReads(0)).toBe(5);
    expect(await checksAfterReads(600_000)).toBe(0);
  });

  it(
    'a stopped replica is banned by the idle check with no client query; reads go on; UNBAN clears the ban',
    { timeout: 90_000 },
    async () => {
      if (cluster.stopOne === undefined || cluster.startOne === undefined) throw new Error('local cluster');
      const replicaReads = await metric(metricsPort, 'shardgate_role_queries_total', {
        database: APP_DB,
        role: 'replica',
      });
      expect(replicaReads).toBeGreaterThanOrEqual(1);
      const bansBefore = await metric(metricsPort, 'shardgate_replica_bans_total', { database: APP_DB });
      const failuresBefore = await metric(metricsPort, 'shardgate_healthcheck_failures_total', {
        database: APP_DB,
      });

      await cluster.stopOne(replicaIndex);
      const bans = await eventually(
        () => rows('SHOW BANS'),
        (b) => b.length === 1,
      );
      expect(bans).toHaveLength(1);
      expect(bans[0]).toMatchObject({ role: 'replica', port: String(cluster.servers[replicaIndex].port) });
      expect(String(bans[0].ban_reason)).toMatch(/^health check/);
      expect(Number(bans[0].ban_time_left)).toBeGreaterThan(500_000);
      expect(Number(bans[0].ban_time_left)).toBeLessThanOrEqual(600_000);
      expect((await replicaPool()).banned).toBe(true);

      expect(await metric(metricsPort, 'shardgate_replica_bans', { database: APP_DB })).toBe(1);
      expect(await metric(metricsPort, 'shardgate_replica_bans_total', { database: APP_DB })).toBe(
        bansBefore + 1,
      );
      expect(
        await metric(metricsPort, 'shardgate_healthcheck_failures_total', { database: APP_DB }),
      ).toBeGreaterThan(failuresBefore);

      // The client never saw the replica die: its reads go to the primary without an error.
      const primaryReads = await metric(metricsPort, 'shardgate_role_queries_total', {
        database: APP_DB,
        role: 'primary',
      });
      for (let i = 0; i < 3; i++) expect(await onReplica(client)).toBe(false);
      expect(
        await metric(metricsPort, 'shardgate_role_queries_total', { database: APP_DB, role: 'primary' }),
      ).toBeGreaterThanOrEqual(primaryReads + 3);

      await cluster.startOne(replicaIndex);
      expect(await onReplica(client)).toBe(false); // up again, but still banned (ban_timeout is long)
      await admin.query('UNBAN');
      expect(await rows('SHOW BANS')).toEqual([]);
      expect(await metric(metricsPort, 'shardgate_replica_bans', { database: APP_DB })).toBe(0);
      expect(
        await eventually(
          () => onReplica(client),
          (r) => r,
        ),
      ).toBe(true);
    },
  );
});

// role = "auto" against a real failover: a primary and its streaming replica, both entries "auto"; the test promotes
// the replica (pg_promote(), the proxy never does) and stops the old primary. A replica promoted while the old primary still runs does not take the writes (two servers claim to be primary: the
// current one stays); once the old primary is stopped, the replay-LSN monitor finds the new one and writes, reads and
// SHOW POOLS follow it.
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
  startClusterWithReplicas,
  waitFor,
} from '../helpers/replicas.js';

describe.skipIf(hasNoLocalServers)('role = "auto": following a failover', () => {
  let cluster: PgCluster;
  let replicaIndex: number;
  let proxy: TestProxy;

  beforeAll(async () => {
    const started = await startClusterWithReplicas(1);
    cluster = started.cluster;
    replicaIndex = started.replicaOf[0];
    const setup = await direct(cluster, 0);
    await setup.query('CREATE TABLE items (id serial PRIMARY KEY, v text)');
    await setup.end();
    proxy = await startTestProxy(cluster, {
      shards: 0, // both entries below, "auto"
      general: 'lsn_check_delay = 0\nlsn_check_interval = 200\nlsn_check_timeout = 1000\nban_timeout = 60000',
      extraPgdog: databaseEntry(cluster, 0, 'auto') + databaseEntry(cluster, replicaIndex, 'auto'),
    });
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  /** The port of the server a write through the proxy landed on. */
  async function writePort(client: pg.Client, v: string): Promise<number> {
    const { rows } = await client.query<{ port: number }>(
      'INSERT INTO items (v) VALUES ($1) RETURNING inet_server_port() AS port',
      [v],
    );
    return rows[0].port;
  }

  it('takes writes to the new primary once the old one is gone; a promoted replica beside a live primary does not', async () => {
    const [oldPrimary, replica] = [cluster.servers[0], cluster.servers[replicaIndex]];
    const client = await connect(proxy.url);
    const admin = await connect(`postgres://admin:admin@127.0.0.1:${proxy.port}/admin`);
    const su = await directSuperuser(cluster, replicaIndex);
    try {
      expect(await writePort(client, 'before')).toBe(oldPrimary.port);
      // Promoted while the old primary still runs: two claim to be primary, the current one keeps the writes.
      await su.query('SELECT pg_promote(true, 30)');
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // several monitor checks
      for (let i = 0; i < 3; i++) expect(await writePort(client, 'both up')).toBe(oldPrimary.port);
      // The old primary goes away: the monitor finds the other one reporting it is the primary.
      if (cluster.stopOne === undefined) throw new Error('local cluster');
      await cluster.stopOne(0);
      // Each try on a new connection: a try that met the dying primary may have lost its own (FATAL), and a closed
      // client would fail every later try.
      await waitFor(
        async () => {
          const attempt = await connect(proxy.url);
          try {
            return (await writePort(attempt, 'after')) === replica.port;
          } finally {
            await attempt.end().catch(() => undefined);
          }
        },
        'a write on the new primary',
        20_000,
      );
      const writer = await connect(proxy.url);
      for (let i = 0; i < 5; i++) expect(await writePort(writer, 'after')).toBe(replica.port);
      const reads = await writer.query<{ port: number; r: boolean }>(
        'SELECT inet_server_port() AS port, pg_is_in_recovery() AS r, count(*) FROM items GROUP BY 1, 2',
      );
      expect(reads.rows).toEqual([expect.objectContaining({ port: replica.port, r: false })]);
      const pools = (await admin.query<{ port: string; role: string }>('SHOW POOLS')).rows;
      const roleOf = (port: number): string | undefined => pools.find((p) => Number(p.port) === port)?.role;
      expect([roleOf(replica.port), roleOf(oldPrimary.port)]).toEqual(['primary', 'replica']);
      await writer.end();
    } finally {
      await client.end().catch(() => undefined);
      await admin.end();
      await su.end();
    }
  });
});

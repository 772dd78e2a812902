// The protocol fuzzer's peers: two PostgreSQL servers (the reference is the first, reached directly) and three
// proxies in front of them — an unsharded database in transaction mode with a pool of 2 (cases share server
// connections, so a state leak from one case into the next shows), the same in session mode, and a 2-shard database
// (the cases touch no sharded table, so each statement runs on one shard or, for writes to fz, on both).
import pg from 'pg';
import type { PgCluster } from '../../../src/testing/pg-cluster.js';
import { testServers } from '../pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../proxy.js';
import type { Target } from './run.js';

export interface FuzzPeers {
  referencePort: number;
  targets: Target[];
  stop(): Promise<void>;
}

/** The table the cases write to (never read, so its contents do not matter). */
const SETUP_SQL = 'CREATE TABLE fz (a int, b text)';

export async function startFuzzPeers(): Promise<FuzzPeers> {
  const cluster: PgCluster = await testServers(2, APP_SERVER_OPTIONS);
  const proxies: TestProxy[] = [];
  try {
    for (const s of cluster.servers) {
      const c = new pg.Client({
        host: s.host,
        port: s.port,
        user: APP_USER,
        password: APP_PASSWORD,
        database: APP_DB,
      });
      await c.connect();
      await c.query(SETUP_SQL);
      await c.end();
    }
    const transaction = await startTestProxy(cluster, { shards: 1, userExtra: 'pool_size = 2' });
    proxies.push(transaction);
    const session = await startTestProxy(cluster, {
      shards: 1,
      general: 'pooler_mode = "session"',
      userExtra: 'pool_size = 4',
    });
    proxies.push(session);
    const sharded = await startTestProxy(cluster, { shards: 2, userExtra: 'pool_size = 2' });
    proxies.push(sharded);
    return {
      referencePort: cluster.servers[0].port,
      targets: [
        {
          name: 'transaction',
          kind: 'transaction',
          port: transaction.port,
          profile: 'full',
          check: 'replies',
        },
        { name: 'session', kind: 'session', port: session.port, profile: 'full', check: 'replies' },
        { name: 'sharded', kind: 'sharded', port: sharded.port, profile: 'oneStatement', check: 'replies' },
        // Batches of several statements are scripts there (docs/sharding.md): no hang, and the proxy keeps serving.
        { name: 'sharded-batches', kind: 'sharded', port: sharded.port, profile: 'full', check: 'hangs' },
      ],
      stop: async () => {
        for (const p of proxies) await p.close();
        await cluster.stop();
      },
    };
  } catch (err) {
    for (const p of proxies) await p.close();
    await cluster.stop();
    throw err;
  }
}

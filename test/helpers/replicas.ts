// Replica fixtures for integration tests: local servers with real streaming replicas (pg_basebackup -R, through
// PgCluster.addReplica), the `[[databases]]` entries that declare them to the proxy, direct clients to any server of
// the cluster, and the polling and per-shard checks the replica tests share.
import pg from 'pg';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { APP_DB, APP_PASSWORD, APP_SERVER_OPTIONS, APP_USER } from './proxy.js';
import { idOn, userShard } from './sharding.js';

/** Replicas need local servers (pg_basebackup, pg_ctl): tests skip themselves under SHARDGATE_TEST_PG. */
export const hasNoLocalServers = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

/** A `[[databases]]` entry of `app` for `cluster.servers[index]` with `role` (and `shard`, when given). */
export function databaseEntry(
  cluster: PgCluster,
  index: number,
  role: 'replica' | 'auto' | 'primary',
  shard?: number,
): string {
  const s = cluster.servers[index];
  const shardLine = shard === undefined ? '' : `shard = ${shard}\n`;
  return `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\n${shardLine}role = "${role}"\n`;
}

/** A connected pg client that ignores late socket errors (servers are stopped under them). */
export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The app user straight to `cluster.servers[index]`. */
export function direct(cluster: PgCluster, index: number): Promise<pg.Client> {
  const s = cluster.servers[index];
  return connect(`postgres://${APP_USER}:${APP_PASSWORD}@${s.host}:${s.port}/${APP_DB}`);
}

/** The superuser straight to `cluster.servers[index]` (pg_promote, pg_wal_replay_pause, pg_terminate_backend). */
export function directSuperuser(cluster: PgCluster, index: number): Promise<pg.Client> {
  const s = cluster.servers[index];
  return connect(
    `postgres://${encodeURIComponent(s.superuser)}:${encodeURIComponent(s.superuserPassword)}@${s.host}:${s.port}/postgres`,
  );
}

/** Polls `check` every 50 ms (errors count as "not yet") until true; returns the milliseconds it took. */
export async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    try {
      if (await check()) return Date.now() - start;
    } catch {
      // not there yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Local servers for `shards` shards (indexes 0…shards-1), then a streaming replica of each; `replicaOf[shard]`. */
export async function startClusterWithReplicas(
  shards: number,
): Promise<{ cluster: PgCluster; replicaOf: number[] }> {
  const cluster = await startPgCluster({ count: shards, ...APP_SERVER_OPTIONS });
  if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
  const replicaOf: number[] = [];
  for (let shard = 0; shard < shards; shard++) replicaOf.push(await cluster.addReplica(shard));
  return { cluster, replicaOf };
}

/** The seeded users.id of each of 2 shards (USERS_SHARDING_TOML): one row per shard, `v = 'seed'`. */
export const SEED_IDS = [idOn(0, 1), idOn(1, 1)];

/**
 * Two shards with a replica each, `users (id bigint PRIMARY KEY, v text)` on each primary with its SEED_IDS row,
 * waited for on each replica.
 */
export async function startShardedReplicas(): Promise<{ cluster: PgCluster; replicaOf: number[] }> {
  const { cluster, replicaOf } = await startClusterWithReplicas(2);
  for (const shard of [0, 1]) {
    const setup = await direct(cluster, shard);
    await setup.query('CREATE TABLE users (id bigint PRIMARY KEY, v text)');
    await setup.query('INSERT INTO users VALUES ($1, $2)', [SEED_IDS[shard], 'seed']);
    await setup.end();
    const replica = await direct(cluster, replicaOf[shard]);
    await waitFor(
      async () =>
        (await replica.query('SELECT 1 FROM users WHERE id = $1', [SEED_IDS[shard]])).rowCount === 1,
      `the seed row on shard ${shard}'s replica`,
    );
    await replica.end();
  }
  return { cluster, replicaOf };
}

/** The replica entries (`role = "replica"`, by shard) of startShardedReplicas' replicas. */
export function shardReplicaEntries(cluster: PgCluster, replicaOf: readonly number[]): string {
  return replicaOf.map((index, shard) => databaseEntry(cluster, index, 'replica', shard)).join('');
}

/** Per shard, whether a fan-out read of the SEED_IDS rows came from a replica (pg_is_in_recovery()). */
export async function fanOut(client: pg.Client): Promise<boolean[]> {
  const { rows } = await client.query<{ id: string; r: boolean }>(
    'SELECT id, pg_is_in_recovery() AS r FROM users WHERE id < 100 ORDER BY id',
  );
  if (rows.length !== 2) throw new Error(`fan-out read: expected 2 rows, got ${rows.length}`);
  const out: boolean[] = [];
  for (const row of rows) out[userShard(Number(row.id))] = row.r;
  return out;
}

/** Whether the answer to `sql` (default: a bare pg_is_in_recovery()) came from a replica. */
export async function onReplica(
  client: pg.Client,
  sql = 'SELECT pg_is_in_recovery() AS r',
): Promise<boolean> {
  const { rows } = await client.query<{ r: boolean }>(sql);
  if (rows.length !== 1) throw new Error(`expected one row from ${sql}, got ${rows.length}`);
  return rows[0].r;
}

/** Sum of the OpenMetrics samples `name` whose labels include `labels`. */
export async function metric(port: number, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  if (!seen) throw new Error(`no metric ${name} ${JSON.stringify(labels)}`);
  return sum;
}

// The two places every ORM step runs: 2 real PostgreSQL shards behind shardgate (two_phase_commit on, users sharded by
// id, orders by user_id, as in `shardgate demo`) and one plain PostgreSQL reached directly. The same assertions must
// hold on both (a step that fails on the shards only because of a known proxy gap: gap.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** `[[sharded_tables]]` users.id and orders.user_id (bigint hash, the demo's layout); other tables are copied. */
export const USERS_ORDERS_SHARDING_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "users"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "orders"
column = "user_id"
data_type = "bigint"
`;

export interface OrmTarget {
  /** "shards" (through shardgate) or "plain" (one PostgreSQL, directly): used in test titles. */
  name: 'shards' | 'plain';
  isSharded: boolean;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  url: string;
}

export interface OrmTargets {
  shards: OrmTarget;
  plain: OrmTarget;
  proxy: TestProxy;
  cluster: PgCluster;
  stop(): Promise<void>;
}

function target(name: OrmTarget['name'], host: string, port: number): OrmTarget {
  return {
    name,
    isSharded: name === 'shards',
    host,
    port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
    url: `postgres://${APP_USER}:${APP_PASSWORD}@${host}:${port}/${APP_DB}`,
  };
}

/** Three PostgreSQL servers: 0 and 1 are the shards behind a proxy (2PC on), 2 is the plain reference. */
export async function startOrmTargets(): Promise<OrmTargets> {
  const cluster = await testServers(3, APP_SERVER_OPTIONS);
  const walDir = mkdtempSync(join(tmpdir(), 'shardgate-orm-'));
  let proxy: TestProxy;
  try {
    proxy = await startTestProxy(cluster, {
      shards: 2,
      general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"`,
      extraPgdog: USERS_ORDERS_SHARDING_TOML,
    });
  } catch (err) {
    await cluster.stop();
    rmSync(walDir, { recursive: true, force: true });
    throw err;
  }
  const plain = cluster.servers[2];
  return {
    shards: target('shards', '127.0.0.1', proxy.port),
    plain: target('plain', plain.host, plain.port),
    proxy,
    cluster,
    stop: async () => {
      await proxy.close();
      await cluster.stop();
      rmSync(walDir, { recursive: true, force: true });
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms`: a request the proxy leaves unanswered fails fast and says where. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a failure, the call succeeded');
}

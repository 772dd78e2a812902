// Sharding fixtures for integration tests: the pgdog.toml sections that shard `users` by `id` (bigint, hash) and copy
// `countries` to every shard, the matching ShardedColumn, and direct (proxy-less) clients to each shard.
import pg from 'pg';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import type { ShardedColumn } from '../../src/sharding/schema.js';
import { shardForLiteral } from '../../src/sharding/shard-of.js';
import { APP_DB, APP_PASSWORD, APP_USER } from './proxy.js';

/** `[[sharded_tables]]` users.id (bigint) and `[[omnisharded_tables]]` countries, for `startTestProxy`'s extraPgdog. */
export const USERS_SHARDING_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "users"
column = "id"
data_type = "bigint"

[[omnisharded_tables]]
database = "${APP_DB}"
tables = ["countries"]
`;

/** The ShardedColumn USERS_SHARDING_TOML describes. */
export const USERS_ID: ShardedColumn = {
  database: APP_DB,
  schema: null,
  table: 'users',
  column: 'id',
  keyType: 'bigint',
  fn: { kind: 'hash' },
};

/** The shard PostgreSQL's hash partitioning picks for users.id = `id` among `shardCount` shards. */
export function userShard(id: number | bigint, shardCount = 2): number {
  return shardForLiteral(USERS_ID, shardCount, String(id));
}

/** The first users.id ≥ `from` that lives on `shard` (of 2 by default). */
export function idOn(shard: number, from: number, shardCount = 2): number {
  for (let id = from; ; id++) if (userShard(id, shardCount) === shard) return id;
}

/** Connected clients (as the app user) straight to each server of `cluster`, by shard; end() them when done. */
export async function directShardClients(cluster: PgCluster): Promise<pg.Client[]> {
  return Promise.all(
    cluster.servers.map(async (s) => {
      const client = new pg.Client({
        host: s.host,
        port: s.port,
        user: APP_USER,
        password: APP_PASSWORD,
        database: APP_DB,
      });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    }),
  );
}

// SHOW DATABASES: one row per configured shard (primaries and replicas): where it is and how many connections.
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  name: 'text',
  shard: 'int8',
  role: 'text',
  host: 'text',
  port: 'int8',
  database: 'text',
  shards: 'int8',
  pool_size: 'int8',
  min_pool_size: 'int8',
  pool_mode: 'text',
  current_connections: 'int8',
  paused: 'bool',
});

export function showDatabases(ctx: AdminContext): ResultSet {
  const config = ctx.config();
  const { general } = config;
  const connections = new Map<string, number>();
  for (const pools of ctx.pools.all()) {
    pools.shards.forEach((pool, shard) => {
      const key = `${pools.database}\u0000${shard}`;
      connections.set(key, (connections.get(key) ?? 0) + pool.stats().total);
    });
  }
  const shardCounts = new Map<string, number>();
  for (const d of config.databases)
    shardCounts.set(d.name, Math.max(shardCounts.get(d.name) ?? 0, d.shard + 1));
  const rows = config.databases.map((d) => [
    d.name,
    d.shard,
    d.role,
    d.host,
    d.port,
    d.databaseName,
    shardCounts.get(d.name) ?? 1,
    general.defaultPoolSize,
    general.minPoolSize,
    general.poolerMode,
    d.role === 'replica' ? 0 : (connections.get(`${d.name}\u0000${d.shard}`) ?? 0),
    ctx.pools.paused,
  ]);
  return { columns: COLUMNS, rows };
}

// SHOW POOLS: one row per pool (user × database × shard): clients waiting, server connections by state, limits.
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  database: 'text',
  user: 'text',
  shard: 'int8',
  host: 'text',
  port: 'int8',
  pool_mode: 'text',
  cl_waiting: 'int8',
  sv_active: 'int8',
  sv_idle: 'int8',
  sv_connecting: 'int8',
  sv_total: 'int8',
  pool_size: 'int8',
  min_pool_size: 'int8',
  maxwait_ms: 'numeric',
  paused: 'bool',
});

export function showPools(ctx: AdminContext): ResultSet {
  const rows = ctx.pools.all().flatMap((pools) =>
    pools.shards.map((pool, shard) => {
      const s = pool.stats();
      const { address, maxSize, minSize } = pool.opts;
      return [
        pools.database,
        pools.user.name,
        shard,
        address.host,
        address.port,
        pools.mode,
        s.waiting,
        s.active,
        s.idle,
        s.connecting,
        s.total,
        maxSize,
        minSize,
        s.maxWaitMs,
        s.isPaused,
      ];
    }),
  );
  return { columns: COLUMNS, rows };
}

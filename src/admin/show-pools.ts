// SHOW POOLS: one row per pool (user × database × shard × server: the primary's and each replica's): its id (for BAN,
// UNBAN, HEALTHCHECK), role, clients waiting, server connections by state, limits, whether it is banned.
import type { AdminContext } from './context.js';
import { poolMembers } from './pool-members.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  id: 'int8',
  database: 'text',
  user: 'text',
  shard: 'int8',
  role: 'text',
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
  banned: 'bool',
});

export function showPools(ctx: AdminContext): ResultSet {
  const rows = poolMembers(ctx).map(({ pools, shard, set, member }) => {
    const { pool } = member;
    const s = pool.stats();
    const { address, maxSize, minSize } = pool.opts;
    return [
      pool.id,
      pools.database,
      pools.user.name,
      shard,
      member.role,
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
      set.isBanned(member),
    ];
  });
  return { columns: COLUMNS, rows };
}

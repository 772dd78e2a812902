// SHOW REPLICATION (PgDog's command and column names): per pool, what the replay-LSN monitor last read there — the
// server's WAL position, whether it is in recovery, and for a replica how far it trails its primary in milliseconds
// (`replica_lag`) and bytes (`replica_lag_bytes`, shardgate's). NULLs where the monitor has no reading (off, not
// checked yet, or the last check failed). PgDog's `lsn_age` (time since the last transaction) is left out: the
// monitor does not read it; `checked_ms_ago` says how old the row's reading is instead.
import { formatLsn } from '../backend/replica-lag.js';
import type { AdminContext } from './context.js';
import { poolIdentity, poolMembers, POOL_IDENTITY_COLUMNS } from './pool-members.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = [
  ...POOL_IDENTITY_COLUMNS,
  ...cols({
    replica_lag: 'int8',
    replica_lag_bytes: 'int8',
    pg_lsn: 'text',
    pg_is_in_recovery: 'bool',
    checked_ms_ago: 'int8',
  }),
];

export function showReplication(ctx: AdminContext): ResultSet {
  const now = Date.now();
  const rows = poolMembers(ctx).map((p) => {
    const { lsn, lag, role, lsnCheckedAtMs } = p.member;
    const isReplicaRead = lsn !== null && role === 'replica';
    return [
      ...poolIdentity(p),
      lsn === null ? null : isReplicaRead ? lag.ms : 0,
      lsn === null ? null : isReplicaRead ? lag.bytes : 0,
      lsn === null || lsn.lsn === null ? null : formatLsn(lsn.lsn),
      lsn === null ? null : lsn.isInRecovery,
      lsnCheckedAtMs === 0 ? null : Math.max(0, now - lsnCheckedAtMs),
    ];
  });
  return { columns: COLUMNS, rows };
}

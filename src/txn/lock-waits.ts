// Who waits for whom on one PostgreSQL server: the statement the deadlock check runs there and its rows. Lock waits
// come from pg_locks (visible to every role, unlike another role's pg_stat_activity row) and their blockers from
// pg_blocking_pids(), which names a prepared transaction's lock as pid 0; those are found again through the
// prepared transaction's own pg_locks rows (pid NULL; its virtual transaction also holds the lock on its xid, which
// pg_prepared_xacts.transaction names) and named by their GID.
import type { QueryOutcome } from '../backend/server-query.js';

/** One wait: backend `waiterPid` waits for `blockerPid`, or (blockerPid 0) for the prepared transaction `gid`. */
export interface LockWait {
  readonly waiterPid: number;
  readonly blockerPid: number;
  readonly gid: string | null;
}

/** The whole server's lock waits (pg_locks and pg_blocking_pids span every database of the server). */
export const LOCK_WAITS_SQL = `
with waiting as (
  select distinct pid from pg_locks where not granted and pid is not null
),
prepared as (
  select l.virtualtransaction, x.gid
    from pg_locks l join pg_prepared_xacts x on l.locktype = 'transactionid' and l.transactionid = x.transaction
   where l.pid is null and l.granted
)
select w.pid, b.pid as blocker, null::text as gid
  from waiting w, unnest(pg_blocking_pids(w.pid)) as b(pid)
 where b.pid <> 0
union all
select distinct w.pid, 0, p.gid
  from pg_locks w
  join pg_locks h on h.granted and h.pid is null
   and h.locktype = w.locktype
   and h.database is not distinct from w.database and h.relation is not distinct from w.relation
   and h.page is not distinct from w.page and h.tuple is not distinct from w.tuple
   and h.virtualxid is not distinct from w.virtualxid and h.transactionid is not distinct from w.transactionid
   and h.classid is not distinct from w.classid and h.objid is not distinct from w.objid
   and h.objsubid is not distinct from w.objsubid
  join prepared p on p.virtualtransaction = h.virtualtransaction
 where not w.granted and w.pid is not null and 0 = any(pg_blocking_pids(w.pid))`;

/** The waits in LOCK_WAITS_SQL's result; null when the statement did not succeed. */
export function readLockWaits(outcome: QueryOutcome): LockWait[] | null {
  if (outcome.kind !== 'ok') return null;
  const waits: LockWait[] = [];
  for (const row of outcome.rows) {
    const waiterPid = Number(row[0]);
    const blockerPid = Number(row[1]);
    if (!Number.isInteger(waiterPid) || !Number.isInteger(blockerPid)) continue;
    waits.push({ waiterPid, blockerPid, gid: row[2] });
  }
  return waits;
}

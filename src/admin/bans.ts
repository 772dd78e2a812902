// Replica bans and health checks from the admin console, with PgDog's syntax: SHOW BANS (its columns), BAN [pool_id]
// and UNBAN [pool_id] (no id: every pool), HEALTHCHECK [pool_id]. Differences from PgDog: a primary is never banned
// (BAN of a primary's id is an error; BAN without an id bans every replica), and HEALTHCHECK answers with a row per
// pool checked instead of nothing.
import type { HealthResult } from '../backend/replica-set.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { AdminContext } from './context.js';
import { poolIdentity, poolMembers, POOL_IDENTITY_COLUMNS, type PoolMember } from './pool-members.js';
import { cols, type ResultSet } from './result-set.js';

/** The reason SHOW BANS shows for a ban made by BAN. */
export const MANUAL_BAN_REASON = 'banned by the admin console (BAN)';

const BAN_COLUMNS = [...POOL_IDENTITY_COLUMNS, ...cols({ ban_reason: 'text', ban_time_left: 'int8' })];

/** SHOW BANS: the banned pools, why, and the milliseconds left (NULL: banned by BAN, until UNBAN). */
export function showBans(ctx: AdminContext): ResultSet {
  const now = Date.now();
  const rows = poolMembers(ctx)
    .filter(({ set, member }) => set.isBanned(member, now))
    .map((p) => [...poolIdentity(p), p.member.banReason, p.set.banTimeLeftMs(p.member, now)]);
  return { columns: BAN_COLUMNS, rows };
}

/** The pools `poolId` names (null: all); an unknown id is an error. */
function targets(ctx: AdminContext, poolId: number | null): PoolMember[] | PgError {
  const all = poolMembers(ctx);
  if (poolId === null) return all;
  const found = all.filter((p) => p.member.pool.id === poolId);
  if (found.length > 0) return found;
  return new PgError(
    'ERROR',
    SqlState.UndefinedObject,
    `no pool with id ${poolId}`,
    undefined,
    'SHOW POOLS lists the pools and their ids.',
  );
}

/** BAN [pool_id]: ban replicas until UNBAN; returns how many were banned now, or the error. */
export function ban(ctx: AdminContext, poolId: number | null, log: (msg: string) => void): number | PgError {
  const found = targets(ctx, poolId);
  if (found instanceof PgError) return found;
  if (poolId !== null && found.every((p) => p.member.role === 'primary')) {
    return new PgError(
      'ERROR',
      SqlState.ObjectNotInPrerequisiteState,
      `pool ${poolId} is a primary: primaries are never banned`,
      undefined,
      'Only replicas can be banned; PAUSE stops traffic to every pool.',
    );
  }
  let n = 0;
  for (const { set, member } of found) if (set.ban(member, MANUAL_BAN_REASON, true)) n++;
  log(`admin: BAN${poolId === null ? '' : ` ${poolId}`} (${n} replica pool(s) banned)`);
  return n;
}

/** UNBAN [pool_id]: lift bans (timed ones too); returns how many were lifted, or the error. */
export function unban(
  ctx: AdminContext,
  poolId: number | null,
  log: (msg: string) => void,
): number | PgError {
  const found = targets(ctx, poolId);
  if (found instanceof PgError) return found;
  let n = 0;
  for (const { set, member } of found) {
    if (!set.isBanned(member)) continue;
    set.unban(member);
    n++;
  }
  log(`admin: UNBAN${poolId === null ? '' : ` ${poolId}`} (${n} pool(s) unbanned)`);
  return n;
}

const CHECK_COLUMNS = [...POOL_IDENTITY_COLUMNS, ...cols({ healthy: 'bool', error: 'text', banned: 'bool' })];

/**
 * HEALTHCHECK [pool_id]: check the pools now (`;` on an idle server or a fresh connection, within
 * healthcheck_timeout); a replica that fails is banned. One row per pool checked.
 */
export async function healthcheck(ctx: AdminContext, poolId: number | null): Promise<ResultSet | PgError> {
  const found = targets(ctx, poolId);
  if (found instanceof PgError) return found;
  const results: [PoolMember, HealthResult][] = await Promise.all(
    found.map(async (p): Promise<[PoolMember, HealthResult]> => {
      const [result] = await p.set.checkIdle(p.member);
      return [p, result];
    }),
  );
  const rows = results.map(([p, { failure }]) => [
    ...poolIdentity(p),
    failure === null,
    failure,
    p.set.isBanned(p.member),
  ]);
  return { columns: CHECK_COLUMNS, rows };
}

// Recovery of prepared transactions left by earlier versions (legacy GIDs without a decision shard, from the local
// decision log's days): this instance's own (or the former default id's) with no COMMIT record in the log are presumed
// aborted once old enough — at any age at start-up — and rolled back. Other software's prepared transactions, and
// stateless GIDs (settled by their decision rows in decision-recovery.ts), are never touched.
import type { Logger } from 'pino';
import { endsPreparedBranch, outcomeFailure } from '../backend/server-query.js';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';
import { gidLikePattern, parseGid } from './gid.js';

export interface LegacyOrphanDeps {
  readonly shards: ShardAccess;
  readonly instanceId: string;
  readonly formerInstanceId?: { readonly id: string; readonly isAmbiguous: boolean } | null;
  readonly orphanTimeoutMs: number;
  /** The manager's counters (TxnCounters): what recovery finished. */
  readonly counters: { recovered: number; rolledBack: number };
  readonly log: Logger;
}

/** Roll back this instance's undecided legacy prepared transactions that are due; the number rolled back. */
export async function rollBackLegacyOrphans(
  deps: LegacyOrphanDeps,
  /** A transaction the log decided, or one in progress here: not an orphan. */
  isKnown: (txid: string) => boolean,
  isStartup: boolean,
): Promise<number> {
  let rolledBack = 0;
  const shards = deps.shards;
  for (const database of shards.shardedDatabases()) {
    const users = shards.users(database);
    if (users.length === 0) continue;
    for (let shard = 0; shard < shards.shardCount(database); shard++) {
      const found = await preparedOnShard(deps, database, users[0], shard);
      if (found === null) continue;
      for (const row of found) {
        const gid = parseGid(row.gid);
        // Stateless GIDs (`_d<N>`) are settled by their decision row (decision-recovery.ts), never presumed aborted.
        if (gid === null || gid.shard !== shard || gid.decisionShard !== undefined) continue;
        if (isKnown(gid.txid)) continue;
        if (!isOrphanDue(deps, gid.instanceId, row.ageMs, isStartup)) continue;
        const owner = users.find((u) => shards.serverUser(database, u, shard) === row.owner) ?? users[0];
        const outcome = await queryShard(shards, database, owner, shard, `ROLLBACK PREPARED '${row.gid}'`);
        if (endsPreparedBranch(outcome)) {
          rolledBack++;
          deps.counters.recovered++;
          deps.counters.rolledBack++;
          deps.log.info(
            { gid: row.gid, database, shard, ageMs: row.ageMs },
            'recovery: rolled back a prepared transaction with no commit decision',
          );
        } else {
          deps.log.error(
            { gid: row.gid, database, shard, err: outcomeFailure(outcome) },
            'recovery: ROLLBACK PREPARED failed; will retry',
          );
        }
      }
    }
  }
  return rolledBack;
}

/**
 * An undecided prepared transaction under `instanceId` is presumed aborted now: this instance's own or the former
 * default id's at any age at start-up (nothing of ours can be in flight yet), else once older than the orphan
 * timeout; an ambiguous former id's only once older than the timeout, at start-up too. Anyone else's: never.
 */
function isOrphanDue(deps: LegacyOrphanDeps, instanceId: string, ageMs: number, isStartup: boolean): boolean {
  const former = deps.formerInstanceId ?? null;
  const isOwn = instanceId === deps.instanceId;
  const isFormer = former !== null && instanceId === former.id;
  if (!isOwn && !isFormer) return false;
  const isAnyAge = isStartup && (isOwn || !former?.isAmbiguous);
  return isAnyAge || ageMs >= deps.orphanTimeoutMs;
}

/**
 * Prepared transactions of this instance (and of the former default id) in the shard's database; null (logged)
 * when the shard is unreachable.
 */
async function preparedOnShard(
  deps: LegacyOrphanDeps,
  database: string,
  user: string,
  shard: number,
): Promise<{ gid: string; ageMs: number; owner: string }[] | null> {
  const ids = [deps.instanceId];
  if (deps.formerInstanceId) ids.push(deps.formerInstanceId.id);
  const matches = ids.map((id) => `gid LIKE '${gidLikePattern(id)}'`).join(' OR ');
  const outcome = await queryShard(
    deps.shards,
    database,
    user,
    shard,
    `SELECT gid, (extract(epoch FROM now() - prepared) * 1000)::bigint, owner FROM pg_prepared_xacts ` +
      `WHERE database = current_database() AND (${matches})`,
  );
  if (outcome.kind !== 'ok') {
    const err = outcomeFailure(outcome);
    deps.log.warn({ database, shard, err }, 'recovery: cannot list prepared transactions');
    return null;
  }
  return outcome.rows.map((r) => ({ gid: r[0] ?? '', ageMs: Number(r[1]), owner: r[2] ?? '' }));
}

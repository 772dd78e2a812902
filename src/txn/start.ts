// Bringing the transaction manager up with the proxy (two_phase_commit = true): check every shard allows prepared
// transactions, open the decision log, run recovery once before clients come, then keep recovering periodically.
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { DecisionLog } from './log/decision-log.js';
import { TransactionManager } from './manager.js';
import { outcomeFailure } from '../backend/server-query.js';
import { ConfigShardAccess, queryShard, type ShardAccess } from './shard-access.js';

export interface StartedTxn {
  readonly manager: TransactionManager;
  close(): Promise<void>;
}

export async function startTransactionManager(config: () => Config, logger: Logger): Promise<StartedTxn> {
  const general = config().general;
  const shards = new ConfigShardAccess(config);
  await checkPreparedTransactions(shards, logger);
  const log = await DecisionLog.open({
    dir: general.twoPhaseCommitWalDir,
    segmentSizeBytes: general.twoPhaseCommitWalSegmentSizeBytes,
    fsyncIntervalMs: general.twoPhaseCommitWalFsyncIntervalMs,
    logger: logger.child({ component: '2pc-log' }),
  });
  const manager = new TransactionManager({
    instanceId: general.instanceId,
    log,
    shards,
    logger,
    orphanTimeoutMs: general.twoPhaseCommitOrphanTimeoutMs,
    recoveryIntervalMs: general.twoPhaseCommitRecoveryIntervalMs,
  });
  const report = await manager.recover(true);
  logger.info(
    { instanceId: general.instanceId, walDir: general.twoPhaseCommitWalDir, ...report },
    'two-phase commit ready (startup recovery done)',
  );
  manager.startPeriodicRecovery();
  return {
    manager,
    async close(): Promise<void> {
      manager.close();
      await log.close();
    },
  };
}

/**
 * Refuse to start when a shard has max_prepared_transactions = 0 (every PREPARE TRANSACTION would fail there).
 * A shard that cannot be reached is only warned about: it may come up later, and its errors will say why.
 */
async function checkPreparedTransactions(shards: ShardAccess, logger: Logger): Promise<void> {
  for (const database of shards.shardedDatabases()) {
    const user = shards.users(database)[0];
    if (user === undefined) continue;
    for (let shard = 0; shard < shards.shardCount(database); shard++) {
      const outcome = await queryShard(shards, database, user, shard, 'SHOW max_prepared_transactions');
      if (outcome.kind !== 'ok') {
        const err = outcomeFailure(outcome);
        logger.warn(
          { database, shard, err },
          'two_phase_commit: cannot check max_prepared_transactions on this shard (unreachable?)',
        );
        continue;
      }
      if (outcome.rows[0]?.[0] === '0') {
        throw new Error(
          `two_phase_commit = true, but shard ${shard} of database "${database}" has max_prepared_transactions = 0: ` +
            'set it above 0 on that PostgreSQL server (ALTER SYSTEM SET max_prepared_transactions = 100, then restart it), ' +
            'or set two_phase_commit = false',
        );
      }
    }
  }
}

// Bringing the transaction manager up with the proxy (two_phase_commit = true): check every shard allows prepared
// transactions, take the instance lock on every shard (refuse to start if another live proxy has this instance id),
// make sure the decision table exists on every shard, open a legacy decision log only if an earlier version left one,
// run recovery once before clients come, then keep recovering periodically.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { InstanceLock } from './instance-lock.js';
import { DecisionLog } from './log/decision-log.js';
import { TransactionManager, type RecoveryReport } from './manager.js';
import type { VisibilityFences } from './visibility-fence.js';
import { outcomeFailure } from '../backend/server-query.js';
import { ConfigShardAccess, queryShard, type ShardAccess } from '../backend/shard-access.js';

export interface StartedTxn {
  readonly manager: TransactionManager;
  close(): Promise<void>;
}

export async function startTransactionManager(
  config: () => Config,
  logger: Logger,
  primary: ConstructorParameters<typeof ConfigShardAccess>[1] = null,
  fences: VisibilityFences | null = null,
): Promise<StartedTxn> {
  const general = config().general;
  const shards = new ConfigShardAccess(config, primary);
  await checkPreparedTransactions(shards, logger);
  // Before recovery: a second live proxy with this id must not get to roll back the first one's transactions.
  let manager: TransactionManager | null = null;
  let conflict: string | null = null; // found by a background retry before the manager exists
  const lock = new InstanceLock({
    instanceId: general.instanceId,
    shards,
    logger,
    onConflict: (c) => {
      conflict = c;
      manager?.refuseCommits(c);
    },
  });
  await lock.acquire();
  let log: DecisionLog | null = null;
  try {
    // Stateless two-phase commit writes nothing locally; a log an earlier version left is still finished (upgrade).
    if (fs.existsSync(general.twoPhaseCommitWalDir))
      log = await DecisionLog.open({
        dir: general.twoPhaseCommitWalDir,
        segmentSizeBytes: general.twoPhaseCommitWalSegmentSizeBytes,
        fsyncIntervalMs: general.twoPhaseCommitWalFsyncIntervalMs,
        logger: logger.child({ component: '2pc-log' }),
      });
  } catch (err) {
    lock.close();
    throw err;
  }
  const former =
    general.formerInstanceId === null
      ? null
      : { id: general.formerInstanceId, isAmbiguous: general.isFormerInstanceIdAmbiguous };
  manager = new TransactionManager({
    instanceId: general.instanceId,
    formerInstanceId: former,
    log,
    shards,
    decisionSchema: general.twoPhaseCommitSchema,
    logger,
    orphanTimeoutMs: general.twoPhaseCommitOrphanTimeoutMs,
    recoveryIntervalMs: general.twoPhaseCommitRecoveryIntervalMs,
    fences,
  });
  if (former?.isAmbiguous === true)
    logger.warn(
      { instanceId: general.instanceId, formerInstanceId: former.id },
      'the former default instance id came from a host name cut to 32 characters and may be shared with other ' +
        'hosts: its undecided prepared transactions are rolled back only once older than two_phase_commit_orphan_timeout',
    );
  manager.refuseCommits(conflict);
  let report: RecoveryReport;
  try {
    await manager.ensureDecisionTable();
    report = await manager.recover(true);
  } catch (err) {
    manager.close();
    await log?.close();
    lock.close();
    throw err;
  }
  logger.info(
    {
      instanceId: general.instanceId,
      formerInstanceId: general.formerInstanceId ?? undefined,
      decisionTable: `${general.twoPhaseCommitSchema}.decisions`,
      legacyWalDir: log === null ? undefined : general.twoPhaseCommitWalDir,
      ...report,
    },
    'two-phase commit ready (startup recovery done)',
  );
  manager.startPeriodicRecovery();
  const running = manager;
  return {
    manager: running,
    async close(): Promise<void> {
      running.close();
      try {
        await log?.close();
      } finally {
        lock.close(); // last: a successor may start once this proxy can no longer settle anything
      }
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

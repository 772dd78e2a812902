// One attempt at finishing a decided (or aborted) distributed transaction's unfinished branches on connections of the
// transaction manager's own (phase-two-connections.ts): COMMIT PREPARED (committing) or ROLLBACK PREPARED (aborting) on each, in parallel. A
// branch that ends is marked so, and cleared in the at_decision gate (phase-two-gate.ts); one that does not keeps its
// error for SHOW TRANSACTIONS and is retried by the manager.
import type { Logger } from 'pino';
import { endsPreparedBranch, outcomeFailure } from '../backend/server-query.js';
import type { QueryOutcome } from '../backend/server-query.js';
import { failpoint, isFailpointSet } from './failpoints.js';
import type { PhaseTwoGate } from './phase-two-gate.js';
import type { Branch, DistributedTransaction } from './transaction.js';

/**
 * `canSplit`: while the failpoint mid_commit_prepared is set, the first branch goes alone before it (as the session's
 * phase 2 does: a crash "with some done and others not").
 */
export async function finishBranches(
  query: (database: string, user: string, shard: number, sql: string) => Promise<QueryOutcome>,
  tx: DistributedTransaction,
  gate: PhaseTwoGate | null,
  log: Logger,
  canSplit = false,
): Promise<void> {
  const verb = tx.state === 'committing' ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
  const branches = tx.unfinishedWriters;
  const end = async (branch: Branch): Promise<void> => {
    const sql = `${verb} '${branch.gid as string}'`;
    const outcome = await query(tx.database, tx.user, branch.shard, sql);
    if (endsPreparedBranch(outcome)) {
      tx.moveBranch(branch, tx.state === 'committing' ? 'committed' : 'rolled_back');
      gate?.close(tx.txid, branch.shard);
      return;
    }
    const err = outcomeFailure(outcome);
    tx.lastError = `shard ${branch.shard}: ${err}`;
    if (tx.retries % 10 === 1)
      log.warn({ txid: tx.txid, shard: branch.shard, retries: tx.retries, err }, `${verb} failed; retrying`);
  };
  if (canSplit && branches.length > 0 && isFailpointSet('mid_commit_prepared')) {
    await end(branches[0]);
    await failpoint('mid_commit_prepared');
    await Promise.all(branches.slice(1).map(end));
    return;
  }
  await Promise.all(branches.map(end));
}

// What SHOW TRANSACTIONS lists: one row per distributed transaction not finished yet — this proxy's own (from the
// transaction manager's bookkeeping) and the in-doubt ones found prepared on the shards, whichever proxy started them.
import type { InDoubtOnShards } from './decision-recovery.js';
import type { Branch, DistributedTransaction } from './transaction.js';

/** One row of SHOW TRANSACTIONS. */
export interface TransactionRow {
  /** Where the row comes from: this proxy's own bookkeeping, or prepared branches found on the shards. */
  source: 'proxy' | 'shards';
  /** The instance id in its GIDs (this proxy's for its own). */
  instanceId: string;
  /** The decision row: true / false; null: none (yet) or not read. */
  decision: boolean | null;
  txid: string;
  state: string;
  database: string;
  user: string;
  ageMs: number;
  shards: string;
  retries: number;
  lastError: string | null;
}

/**
 * A branch in SHOW TRANSACTIONS: a writer's state, `decision <state>` on the decision shard (its branch committed by
 * COMMIT, or prepared like the others with atomic_visibility), or `reader`.
 */
function branchLabel(b: Branch, decisionShard: number | null): string {
  if (b.role === 'reader') return 'reader';
  return b.role === 'decision' || b.shard === decisionShard ? `decision ${b.state}` : b.state;
}

/** A transaction of this proxy's own. */
export function ownTransactionRow(
  tx: DistributedTransaction,
  instanceId: string,
  now: number,
): TransactionRow {
  return {
    source: 'proxy',
    instanceId,
    decision: tx.state === 'committing' || tx.state === 'done' ? true : null,
    txid: tx.txid,
    state: tx.isHeldInDoubt ? 'in doubt (decision log failed)' : tx.state,
    database: tx.database,
    user: tx.user,
    ageMs: now - tx.startedAt,
    shards: tx.branches.map((b) => `${b.shard}:${branchLabel(b, tx.decisionShard)}`).join(','),
    retries: tx.retries,
    lastError: tx.lastError,
  };
}

/** A transaction found prepared on the shards (another proxy's, or one this proxy no longer tracks). */
export function foundTransactionRow(t: InDoubtOnShards): TransactionRow {
  return {
    source: 'shards',
    instanceId: t.instanceId,
    decision: t.decision,
    txid: t.txid,
    state: 'prepared (in doubt)',
    database: t.database,
    user: t.owner,
    ageMs: t.ageMs,
    shards: t.shards,
    retries: 0,
    lastError: null,
  };
}

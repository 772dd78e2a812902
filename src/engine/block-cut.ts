// One cut for a REPEATABLE READ / SERIALIZABLE transaction block across shards (atomic_visibility, issue 14). Such a
// block reads every statement in one snapshot per shard, taken by the first statement that runs there; shards reached
// by different statements would take theirs at different moments, on different sides of a commit. So at the block's
// first statement (not a transaction-control statement or a setting) every shard of the database joins the block and
// takes its snapshot with a trivial `SELECT 1`, all within one reader section of the visibility fence; every later
// statement of the block, on any shard, then reads that one cut. What decides whether a block needs it, and the fence
// section around the snapshot statements; the dispatch holds the servers and sends.
import { PgError } from '../errors/pg-error.js';
import type { TransactionBlock } from '../txn/transaction-block.js';
import type { VisibilityFence } from '../txn/visibility-fence.js';
import { fenceTimeoutError } from './fenced-read.js';

const SNAPSHOT_PER_TRANSACTION = /\b(repeatable\s+read|serializable)\b/i;
const SNAPSHOT_PER_STATEMENT = /\bread\s+(committed|uncommitted)\b/i;

/** The statement that takes a shard's transaction snapshot (the first one of its transaction that needs one). */
export const CUT_SQL = 'SELECT 1';

/**
 * The statement that makes each shard's transaction fail when its snapshot may have been taken outside the fence (the
 * section timed out after it was sent): PostgreSQL's own answer to a snapshot it cannot serve, 40001; the client rolls
 * back and retries the transaction.
 */
const ABORT_CUT_SQL =
  "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = " +
  "'shardgate: the snapshots of this transaction could not be taken together on every shard'; END$$";

/**
 * Whether a block with these characteristics (its BEGIN and SET TRANSACTION texts, in order) runs in one snapshot per
 * shard for the whole transaction: the last isolation level named decides; none named — the session's
 * `default_transaction_isolation` (the text of its SET or startup value; undefined: PostgreSQL's default, READ
 * COMMITTED). A default set on the role or database (ALTER ROLE … SET) is not seen here.
 */
export function isSnapshotPerBlock(
  characteristics: readonly string[],
  sessionDefault: string | undefined,
): boolean {
  let isPerBlock: boolean | null = null;
  for (const text of characteristics) {
    if (SNAPSHOT_PER_TRANSACTION.test(text)) isPerBlock = true;
    else if (SNAPSHOT_PER_STATEMENT.test(text)) isPerBlock = false;
  }
  return isPerBlock ?? (sessionDefault !== undefined && SNAPSHOT_PER_TRANSACTION.test(sessionDefault));
}

/**
 * The fence the next statement of `block` must take the block's cut in first, or null (no fence, no block, READ
 * COMMITTED, or taken already). `settings`: the session's (default_transaction_isolation among them).
 */
export function blockCutFence(
  fence: VisibilityFence | null,
  block: TransactionBlock,
  settings: ReadonlyMap<string, string>,
): VisibilityFence | null {
  if (fence === null) return null;
  const sessionDefault = settings.get('default_transaction_isolation');
  return block.needsCut((c) => isSnapshotPerBlock(c, sessionDefault)) ? fence : null;
}

/** What taking the cut needs: the fence, its bound, and a way to run one statement on every shard of the cut. */
export interface CutRun {
  readonly fence: VisibilityFence;
  readonly shards: readonly number[];
  readonly timeoutMs: number;
  /** Run `sql` on every shard of the cut (their servers held, in the block); `done` once every shard answered. */
  run(sql: string, done: (errors: Buffer[]) => void): void;
}

/**
 * Take the block's snapshot on every shard within one reader section: enter, send CUT_SQL everywhere, leave once
 * every shard answered. `onDone(null)` when the cut is taken; a PgError when not — 40001 if the section could not be
 * entered within the bound (nothing sent), or if it ran out after the snapshots were sent (then each shard's
 * transaction is failed too, so no statement reads a cut that may be torn); a shard's own error otherwise.
 */
export function takeCut(cut: CutRun, onDone: (err: PgError | null) => void): void {
  let isSent = false;
  let timeout: PgError | null = null;
  const hold = cut.fence.enterRead(
    cut.shards,
    cut.timeoutMs,
    () => {
      isSent = true;
      cut.run(CUT_SQL, (errors) => {
        hold.release();
        const late = timeout;
        if (late !== null) return cut.run(ABORT_CUT_SQL, () => onDone(late));
        onDone(errors.length > 0 ? PgError.fromServer(errors[0]) : null);
      });
    },
    (blocker) => {
      timeout = fenceTimeoutError(blocker, cut.timeoutMs);
      if (!isSent) onDone(timeout);
    },
  );
}

// SHOW TRANSACTIONS: distributed (two-phase) transactions not finished yet — this proxy's own (committing, being
// retried) and every in-doubt one prepared on the shards, whichever proxy started it (`source` says which); and
// RECOVER, a recovery pass now. Always the same columns; no rows when two_phase_commit is off.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  txid: 'text',
  state: 'text',
  database: 'text',
  user: 'text',
  age_ms: 'int8',
  shards: 'text',
  retries: 'int8',
  last_error: 'text',
  source: 'text',
  instance_id: 'text',
  decision: 'bool',
});

export async function showTransactions(ctx: AdminContext): Promise<ResultSet> {
  const rows = ((await ctx.txn()?.transactionsEverywhere()) ?? []).map((t) => [
    t.txid,
    t.state,
    t.database,
    t.user,
    t.ageMs,
    t.shards,
    t.retries,
    t.lastError,
    t.source,
    t.instanceId,
    t.decision,
  ]);
  return { columns: COLUMNS, rows };
}

const RECOVER_COLUMNS = cols({
  committed: 'int8',
  rolled_back: 'int8',
  pending: 'int8',
  rows_deleted: 'int8',
});

/** RECOVER: one recovery pass now (the same rules as the periodic one, minimum age included). */
export async function recoverNow(ctx: AdminContext): Promise<ResultSet | PgError> {
  const txn = ctx.txn();
  if (txn === null)
    return new PgError(
      'ERROR',
      SqlState.ObjectNotInPrerequisiteState,
      'RECOVER needs two_phase_commit = true: there is nothing to recover',
    );
  const report = await txn.recover(false);
  return {
    columns: RECOVER_COLUMNS,
    rows: [[report.committed, report.rolledBack, report.pending, report.rowsDeleted ?? 0]],
  };
}

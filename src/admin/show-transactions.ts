// SHOW TRANSACTIONS: distributed (two-phase) transactions not finished yet — committing, in doubt, being retried.
// Always the same columns; no rows when two_phase_commit is off.
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
});

export function showTransactions(ctx: AdminContext): ResultSet {
  const rows = (ctx.txn()?.transactions() ?? []).map((t) => [
    t.txid,
    t.state,
    t.database,
    t.user,
    t.ageMs,
    t.shards,
    t.retries,
    t.lastError,
  ]);
  return { columns: COLUMNS, rows };
}

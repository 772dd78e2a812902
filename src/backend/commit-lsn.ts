// The WAL position right after a transaction committed on a primary (read-your-writes): one statement on the same
// server connection before it goes back to its pool. pg_current_wal_insert_lsn() is at or past the end of the
// transaction's commit record whatever synchronous_commit says, so a replica that has replayed it has the commit.
import { runQuery } from './server-query.js';
import type { ServerConnection } from './server-connection.js';

export const COMMIT_LSN_QUERY =
  "SELECT (pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_catalog.pg_lsn)::text";

/** The primary's WAL insert position in bytes, asked on `server` (idle, attached to no client); null when it failed. */
export async function fetchCommitLsn(server: ServerConnection): Promise<bigint | null> {
  const outcome = await runQuery(server, COMMIT_LSN_QUERY);
  if (outcome.kind !== 'ok') return null;
  const text = outcome.rows[0]?.[0];
  return text != null && /^\d+$/.test(text) ? BigInt(text) : null;
}

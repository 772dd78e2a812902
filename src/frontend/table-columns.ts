// Looking up a table's column order on a shard, for statements that do not list their columns (INSERT … VALUES,
// COPY … FROM STDIN) into a sharded table: the sharding key's position comes from the table definition.
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { runQuery } from '../backend/server-query.js';
import { quoteIdentifier } from '../router/sql-text.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState, type SqlStateCode } from '../errors/sqlstate.js';

export type ColumnsLookup =
  | { readonly kind: 'ok'; readonly columns: string[] }
  /** The shard's ErrorResponse (e.g. 42P01: the table does not exist), to answer the client with. */
  | { readonly kind: 'error'; readonly error: PgError }
  | { readonly kind: 'lost'; readonly reason: string };

/** `schema.table` / `table` (PostgreSQL's names, unquoted) as a quoted identifier for ::regclass. */
function quotedName(table: string): string {
  const dot = table.indexOf('.');
  const parts = dot < 0 ? [table] : [table.slice(0, dot), table.slice(dot + 1)];
  return parts.map(quoteIdentifier).join('.');
}

/** The columns of `table` (`schema.table` or `table`, unquoted) in table order, asked of `server`. */
export async function lookUpTableColumns(
  server: ServerConnection,
  table: string,
  owner: Pick<FramedSinkOwner, 'onServerParameter'>,
): Promise<ColumnsLookup> {
  const literal = quotedName(table).replace(/'/g, "''");
  const outcome = await runQuery(
    server,
    `SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = '${literal}'::regclass AND attnum > 0 ` +
      'AND NOT attisdropped ORDER BY attnum',
    owner,
  );
  if (outcome.kind === 'lost') return outcome;
  if (outcome.kind === 'error') {
    const code = /^[0-9A-Z]{5}$/.test(outcome.code) ? (outcome.code as SqlStateCode) : SqlState.InternalError;
    return { kind: 'error', error: new PgError('ERROR', code, outcome.message) };
  }
  return { kind: 'ok', columns: outcome.rows.map((r) => r[0] ?? '') };
}

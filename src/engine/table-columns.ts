// Looking up a sharded table's columns on a shard: their order, for statements that do not list them (INSERT …
// VALUES, COPY … FROM STDIN: the sharding key's position comes from the table definition), and the columns a sequence
// fills by default (`serial`, `nextval(…)`, identities), which the proxy fills itself from the sequence of record.
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { runQuery } from '../backend/server-query.js';
import { quoteIdentifier } from '../router/sql-text.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState, type SqlStateCode } from '../errors/sqlstate.js';
import type { GeneratedColumn } from '../sharding/schema.js';

export type ColumnsLookup =
  | { readonly kind: 'ok'; readonly columns: string[]; readonly generated: GeneratedColumn[] }
  /** The shard's ErrorResponse (e.g. 42P01: the table does not exist), to answer the client with. */
  | { readonly kind: 'error'; readonly error: PgError }
  | { readonly kind: 'lost'; readonly reason: string };

/** `schema.table` / `table` (PostgreSQL's names, unquoted) as a quoted identifier for ::regclass. */
function quotedName(table: string): string {
  const dot = table.indexOf('.');
  const parts = dot < 0 ? [table] : [table.slice(0, dot), table.slice(dot + 1)];
  return parts.map(quoteIdentifier).join('.');
}

/** `nextval('users_id_seq'::regclass)` → `users_id_seq` (the default of a column that is not a serial's). */
const NEXTVAL_DEFAULT = /^nextval\('((?:[^']|'')+)'::regclass\)$/;

/**
 * The columns of `table` (`schema.table` or `table`, unquoted) in table order, and those a sequence fills by default,
 * asked of `server`.
 */
export async function lookUpTableColumns(
  server: ServerConnection,
  table: string,
  owner: Pick<FramedSinkOwner, 'onServerParameter'>,
): Promise<ColumnsLookup> {
  const literal = quotedName(table).replace(/'/g, "''");
  const outcome = await runQuery(
    server,
    `SELECT a.attname, a.attidentity, pg_catalog.pg_get_serial_sequence('${literal}', a.attname),
        pg_catalog.pg_get_expr(d.adbin, d.adrelid)
      FROM pg_catalog.pg_attribute a
      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = '${literal}'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    owner,
  );
  if (outcome.kind === 'lost') return outcome;
  if (outcome.kind === 'error') {
    const code = /^[0-9A-Z]{5}$/.test(outcome.code) ? (outcome.code as SqlStateCode) : SqlState.InternalError;
    return { kind: 'error', error: new PgError('ERROR', code, outcome.message) };
  }
  const generated: GeneratedColumn[] = [];
  for (const [name, identity, serialSequence, defaultExpr] of outcome.rows) {
    const fromDefault = NEXTVAL_DEFAULT.exec(defaultExpr ?? '')?.[1].replace(/''/g, "'") ?? null;
    const sequence = serialSequence ?? fromDefault;
    if (sequence !== null && name !== null)
      generated.push({ column: name, sequence, isAlways: identity === 'a' });
  }
  return { kind: 'ok', columns: outcome.rows.map((r) => r[0] ?? ''), generated };
}

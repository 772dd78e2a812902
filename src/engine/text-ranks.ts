// ORDER BY on text across shards in a database whose collation does not sort by bytes (en_US, ICU locales): the
// proxy cannot compare such text itself, so once every shard's rows are in, one shard puts the distinct key values in
// the database's own order with one query, and the merge compares ranks (execute/reply-merger.ts `needsRanks`).
// Exact by construction: the same PostgreSQL collation that ordered each shard's rows orders the values.
import { runQuery, type QueryOutcome } from '../backend/server-query.js';
import type { ServerConnection } from '../backend/server-connection.js';
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { RankRequest } from '../execute/reply-merger.js';
import { escapeStringLiteral, quoteIdentifier } from '../router/sql-text.js';

/** The "default" collation's OID (pg_collation): a column without a collation of its own has it (or 0). */
const DEFAULT_COLLATION_OID = 100;

/**
 * The query that ranks `request.values`: their ordinal positions in the collation's order, with the number of the
 * key columns that have a collation of their own (the shards sorted those in it: ranking in the database's would be
 * wrong, so that is refused).
 */
export function textRankSql(request: RankRequest): string {
  const array = `ARRAY[${request.values.map(escapeStringLiteral).join(',')}]::text[]`;
  const columns = request.collation === null ? request.columns : [];
  const own =
    columns.length === 0
      ? 'SELECT 0::bigint AS n'
      : `SELECT count(*) AS n FROM pg_catalog.pg_attribute WHERE (attrelid, attnum) IN (${columns
          .map((c) => `(${c.tableOid}::oid, ${c.column}::int2)`)
          .join(', ')}) AND attcollation NOT IN (0, ${DEFAULT_COLLATION_OID})`;
  const collate = request.collation === null ? '' : ` COLLATE ${quoteIdentifier(request.collation)}`;
  return (
    `WITH own AS (${own}) SELECT t.o, own.n FROM unnest(${array}) WITH ORDINALITY AS t(v, o), own ` +
    `ORDER BY t.v${collate}, t.o`
  );
}

/** The ranks (value → position) from the rank query's outcome, or the error to answer the client's query with. */
export function ranksFrom(request: RankRequest, outcome: QueryOutcome): Map<string, number> | PgError {
  if (outcome.kind === 'error') return new PgError('ERROR', SqlState.InternalError, outcome.message);
  if (outcome.kind === 'lost') {
    return new PgError('ERROR', SqlState.ConnectionFailure, `ordering text across shards: ${outcome.reason}`);
  }
  const ranks = new Map<string, number>();
  for (const [o, n] of outcome.rows) {
    if (Number(n) > 0) {
      return PgError.featureNotSupported(
        'ORDER BY across shards on a text column with a collation of its own (not the database default) is not supported',
        'Add COLLATE "C" or the column\'s collation to the ORDER BY, or route the query to one shard.',
      );
    }
    ranks.set(request.values[Number(o) - 1], ranks.size);
  }
  return ranks;
}

/** Rank `request` on `server` (idle, attached to nothing else meanwhile). */
export function rankTexts(
  server: ServerConnection,
  request: RankRequest,
  owner: Pick<FramedSinkOwner, 'onServerParameter'>,
  done: (ranks: Map<string, number> | PgError) => void,
): void {
  void runQuery(server, textRankSql(request), owner).then((outcome) => done(ranksFrom(request, outcome)));
}

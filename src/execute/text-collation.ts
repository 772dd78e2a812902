// Which text the proxy can order by itself: byte order ("C", "POSIX", "C.UTF-8", or a sort key with COLLATE "C").
// Text under any other database collation is compared by rank (collation-ranks.ts) where the rows can wait for it,
// and refused with 0A000 elsewhere (min/max, ordering keys it cannot rank).
import { PgError } from '../errors/pg-error.js';
import { isCollatedType, type ColumnType } from './value-compare.js';

/** Text under a collation other than byte order: the proxy cannot compare it by itself. */
export function needsCollationOrder(
  textCollation: string | null | undefined,
  type: ColumnType,
  isByteCollated: boolean,
): boolean {
  return textCollation !== undefined && textCollation !== null && !isByteCollated && isCollatedType(type);
}

/** Text under a collation other than byte order cannot be min/max'ed (or group-ordered) here exactly: refuse. */
export function checkCollation(
  textCollation: string | null | undefined,
  type: ColumnType,
  isByteCollated: boolean,
  purpose: string,
): void {
  if (!needsCollationOrder(textCollation, type, isByteCollated)) return;
  throw PgError.featureNotSupported(
    `${purpose} on text across shards would need the database collation "${textCollation as string}", which shardgate cannot reproduce here`,
    'Add COLLATE "default" (the database order) or COLLATE "C" (byte order) to the expression, sort on a table column, or route the query to one shard.',
  );
}

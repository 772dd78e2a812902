// ORDER BY comparators across shards, one per sort key. Text under a collation that does not sort by bytes cannot be
// compared by the proxy: where every row can wait (`isRankable`), such a key is compared by its values' rank in the
// database's own order, which one shard gives once every row is in (the caller sends `request()` there and hands the
// order back with `set`); elsewhere it is refused with 0A000 (text-collation.ts). A key of a type the proxy cannot
// order as PostgreSQL does (arrays — array_agg's result —, intervals, json, enums, …) is refused with 0A000: comparing
// its bytes would merge the shards' sorted runs out of order.
import { PgError } from '../errors/pg-error.js';
import type { RowColumnType } from '../protocol/rows.js';
import type { SortKey } from './merge-spec.js';
import { columnType } from './result-columns.js';
import { checkCollation, needsCollationOrder } from './text-collation.js';
import { comparatorFor, hasTypeOrder, type ColumnType, type ValueComparator } from './value-compare.js';

/** Text sort key values to put in the database's order (ORDER BY on text under a collation that is not bytes). */
export interface RankRequest {
  readonly values: readonly string[];
  /** A COLLATE clause's collation, or null: the database's default (then `columns` must not have their own). */
  readonly collation: string | null;
  /** Table columns the keys come from (table OID, column number). */
  readonly columns: readonly { readonly tableOid: number; readonly column: number }[];
}

export class CollationRanks {
  /** Indices into the sort keys of the keys compared by rank. */
  private readonly keys: number[] = [];
  /** The collation the ranked keys are ordered in: a COLLATE clause's, or null for the database's (or column's). */
  private collation: string | null = null;
  /** The table columns the ranked keys come from (their own collation must be the database's). */
  private readonly columns: { tableOid: number; column: number }[] = [];
  private ranks: Map<string, number> | null = null;

  /** `textCollation`: the database's collation when it does not sort text by bytes (MergeSpec.textCollation). */
  constructor(private readonly textCollation: string | null | undefined) {}

  /** The sort keys (indices into `orderBy`) compared by rank. */
  get rankedKeys(): readonly number[] {
    return this.keys;
  }

  /** Some keys are compared by rank and the ranks have not been given yet. */
  get isAwaiting(): boolean {
    return this.keys.length > 0 && this.ranks === null;
  }

  /**
   * A comparator per ORDER BY key for these column types. Text under a non-byte collation: by rank in the database's
   * order (`isRankable`: the caller holds every row until the ranks are in), else refused.
   */
  comparators(
    orderBy: readonly SortKey[],
    types: readonly RowColumnType[],
    isRankable = false,
  ): ValueComparator[] {
    for (const k of orderBy) checkTypeOrder(columnType(types, k.column));
    // Text sorts by bytes in this database (the spec names no collation): every key is compared by its values.
    if (this.textCollation == null) return orderBy.map((k) => comparatorFor(columnType(types, k.column)));
    return orderBy.map((k, i) => {
      const type = columnType(types, k.column);
      const tableOid = type.tableOid ?? 0;
      const collation = k.collation ?? null;
      // Ranked: a table column (its own collation is checked by the rank query) or a key with a COLLATE clause. An
      // expression's collation comes from the columns in it, which the proxy cannot see: refused (add a COLLATE).
      const isRankableKey = isRankable && (tableOid !== 0 || collation !== null);
      if (isRankableKey && needsCollationOrder(this.textCollation, type, k.isByteCollated === true)) {
        if (this.keys.length > 0 && collation !== this.collation) {
          throw PgError.featureNotSupported(
            'ORDER BY text keys in different collations across shards is not supported',
            'Sort every text key in one collation, or route the query to one shard.',
          );
        }
        this.keys.push(i);
        this.collation = collation;
        if (collation === null) {
          this.columns.push({ tableOid, column: type.column ?? 0 });
        }
        return (a, b) => this.rankOf(a) - this.rankOf(b);
      }
      checkCollation(this.textCollation, type, k.isByteCollated === true, 'ORDER BY');
      return comparatorFor(type);
    });
  }

  /** What to order: `values` (the distinct values of the ranked keys held), in which collation, from which columns. */
  request(values: readonly string[]): RankRequest {
    return { values, collation: this.collation, columns: this.columns };
  }

  /** The database's order of the requested values (value → position). */
  set(ranks: Map<string, number>): void {
    this.ranks = ranks;
  }

  private rankOf(value: Buffer): number {
    const rank = (this.ranks as Map<string, number>).get(value.toString('utf8'));
    if (rank === undefined) throw PgError.internal('a text sort key has no rank in the database order');
    return rank;
  }
}

/** Refuses (0A000) a sort key of a type `comparatorFor` does not order as PostgreSQL does. */
function checkTypeOrder(type: ColumnType): void {
  if (hasTypeOrder(type)) return;
  throw PgError.featureNotSupported(
    `ORDER BY a value of type OID ${type.typeOid} across shards cannot be merged: shardgate cannot order that type as PostgreSQL does`,
    'Order by columns of built-in scalar types (integer, numeric, text, timestamp, …), or route the query to one shard.',
  );
}

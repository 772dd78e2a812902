// Row strategy for GROUP BY (and DISTINCT / UNION, which group by every column): each shard's partial groups are
// folded into their group as they arrive (group-fold.ts: the group's first row plus its aggregates' running state);
// once every shard has ended, HAVING filters the merged groups (a grand total's one row if there are none), ORDER BY
// sorts them (collated text by rank: collation-ranks.ts), then OFFSET and LIMIT apply.
import { Buffer } from 'node:buffer';
import { readDataRow } from '../protocol/rows.js';
import { CollationRanks, type RankRequest } from './collation-ranks.js';
import { groupKey, groupKeysFor, type ValueKey } from './group-key.js';
import { rowFolderFor, type MergedRow, type Row, type RowFolder } from './group-fold.js';
import { havingPasses } from './having-filter.js';
import { RowMerge, type MergeParts } from './row-merge.js';
import { compareSortKeys } from './sort-keys.js';
import type { ColumnType, ValueComparator } from './value-compare.js';

export class GroupMerge extends RowMerge {
  /** Every group seen, by group key: its first row with its aggregates folded so far. */
  private readonly groups = new Map<string, MergedRow>();
  /** Once every shard has ended: the merged groups that pass HAVING, in no order yet. */
  private merged: Row[] | null = null;
  /** How aggregates fold (set at the first row, from the column types). */
  private folder: RowFolder | null = null;
  /** How each group column's values are keyed (set at the first row, from the column types). */
  private valueKeys: (ValueKey | null)[] | null = null;
  /** The ORDER BY comparators (set up before the ranks are asked for). */
  private comparators: ValueComparator[] | null = null;
  private readonly ranks: CollationRanks;
  private readonly groupBy: readonly number[];

  constructor(private readonly parts: MergeParts) {
    super();
    this.groupBy = parts.spec.groupBy as readonly number[];
    this.ranks = new CollationRanks(parts.spec.textCollation);
  }

  onRow(shard: number, frame: Buffer): void {
    const values = readDataRow(frame); // views: copied below when the row starts a group
    const columns = this.groupBy;
    // Equal as PostgreSQL's equality says (numeric 1.0 = 1.00, -0 = 0 …), not just by bytes (group-key.ts).
    this.valueKeys ??= groupKeysFor(
      this.parts.columns.columnTypes('GROUP BY'),
      columns,
      'GROUP BY / DISTINCT / UNION',
    );
    const key = groupKey(values, columns, this.valueKeys);
    const group = this.groups.get(key);
    if (group !== undefined) group.add(values, shard);
    else this.groups.set(key, this.rowFolder().start(readDataRow(Buffer.from(frame)), shard));
  }

  override finish(): boolean {
    const merged = (this.merged ??= this.mergeGroups());
    const orderBy = this.parts.spec.orderBy;
    // Groups ordered by text in a collation that is not bytes: a shard ranks their values first (setRanks).
    if (this.comparators === null && orderBy.length > 0 && merged.length > 1) {
      this.comparators = this.ranks.comparators(orderBy, this.mergedTypes(), true);
    }
    if (this.ranks.isAwaiting) return false;
    this.emitGroups(merged);
    return true;
  }

  override drop(): void {
    this.groups.clear(); // what a failed statement held (DISTINCT values…) is not needed any more
  }

  override get isAwaitingRanks(): boolean {
    return this.ranks.isAwaiting;
  }

  /** The distinct values of the ranked keys in the merged groups. */
  override rankRequest(): RankRequest {
    const values = new Set<string>();
    const orderBy = this.parts.spec.orderBy;
    const columns = this.ranks.rankedKeys.map((k) => orderBy[k].column);
    for (const row of this.merged ?? []) {
      for (const c of columns) {
        const v = row[c];
        if (v != null) values.add(v.toString('utf8'));
      }
    }
    return this.ranks.request([...values]);
  }

  override setRanks(ranks: Map<string, number>): void {
    this.ranks.set(ranks);
  }

  private rowFolder(): RowFolder {
    return (this.folder ??= rowFolderFor(this.parts.spec, this.parts.columns, this.parts.held));
  }

  private mergedTypes(): readonly ColumnType[] {
    const columns = this.parts.columns;
    return columns.mergedTypes(columns.columnTypes('GROUP BY'));
  }

  /** The groups merged from every shard's partial ones, HAVING applied (a grand total's one row if none). */
  private mergeGroups(): Row[] {
    const { spec, columns } = this.parts;
    const out: Row[] = [];
    for (const group of this.groups.values()) out.push(group.result());
    this.groups.clear();
    if (out.length === 0 && spec.isGrandTotal === true) out.push(this.rowFolder().emptyRow());
    const having = spec.having;
    if (having === undefined || out.length === 0) return out;
    const merged = columns.mergedTypes(columns.columnTypes('HAVING'));
    const collation = spec.textCollation ?? null;
    return out.filter((row) => havingPasses(having, row, merged, collation));
  }

  /** The merged groups in ORDER BY order, then OFFSET and LIMIT. */
  private emitGroups(rows: readonly Row[]): void {
    const { spec, output } = this.parts;
    const orderBy = spec.orderBy;
    if (orderBy.length > 0 && rows.length > 1) {
      const comparators = this.comparators ?? this.ranks.comparators(orderBy, this.mergedTypes());
      const keyed = rows.map((row) => ({ row, keys: orderBy.map((k) => row[k.column]) }));
      keyed.sort((a, b) => compareSortKeys(orderBy, comparators, a.keys, b.keys));
      for (const { row } of keyed) output.offerValues(row);
      return;
    }
    for (const row of rows) output.offerValues(row);
  }
}

// Row strategy for aggregates without GROUP BY: each shard returns one row; once every shard has ended they are
// combined into one (group-fold.ts: the first row's values, aggregates merged), HAVING applied, and sent.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { readDataRow } from '../protocol/rows.js';
import { rowFolderFor, type Row } from './group-fold.js';
import { havingPasses } from './having-filter.js';
import { RowMerge, type MergeParts } from './row-merge.js';

export class AggregateMerge extends RowMerge {
  /** Each shard's one row (copied), null until it comes. */
  private readonly rows: (Row | null)[];

  constructor(private readonly parts: MergeParts) {
    super();
    this.rows = new Array<Row | null>(parts.shardCount).fill(null);
  }

  onRow(shard: number, frame: Buffer): void {
    if (this.rows[shard] !== null) {
      throw PgError.internal(`an aggregate query across shards returned more than one row on shard ${shard}`);
    }
    this.rows[shard] = readDataRow(Buffer.from(frame));
  }

  override finish(): boolean {
    const { spec, columns, output } = this.parts;
    const aggregates = spec.aggregates ?? [];
    const rows = this.rows.filter((r): r is Row => r !== null);
    if (rows.length === 0) return true;
    const width = rows[0].length;
    if (rows.some((r) => r.length !== width))
      throw PgError.internal('shards returned aggregate rows of different widths');
    const types = aggregates.length > 0 ? columns.columnTypes('an aggregate') : [];
    for (const { column, countColumn } of aggregates) {
      if (Math.max(column, countColumn ?? 0) >= width)
        throw PgError.internal(`aggregate column ${column + 1} is beyond the ${width} columns of the row`);
    }
    const merged = rowFolderFor(spec, columns, this.parts.held).start(rows[0], 0);
    for (let i = 1; i < rows.length; i++) merged.add(rows[i], i);
    const out = merged.result();
    const having = spec.having;
    const collation = spec.textCollation ?? null;
    if (having !== undefined && !havingPasses(having, out, columns.mergedTypes(types), collation))
      return true;
    output.offerValues(out);
    return true;
  }

  override drop(): void {
    this.rows.fill(null);
  }
}

// One merged row built from partial rows — each shard's aggregate row, each shard's partial group, or the
// sub-groups a shard returns when it also groups by DISTINCT values — folded as they arrive, so a group holds one row
// and its aggregates' running state, not every partial row. Every column keeps the first row's value, except the
// aggregate columns (MergeSpec.aggregates), folded by kind: count/sum/min/max partials (partial-aggregates.ts), avg
// from its sum and count (average.ts), DISTINCT values (distinct-aggregate.ts), ordered arrays (ordered-aggregate.ts),
// and 'whole' (the group lies on one shard: its value is kept — a second shard's row for it fails with 0A000).
import { PgError } from '../errors/pg-error.js';
import { AverageAccumulator } from './average.js';
import { distinctAccumulatorFactory } from './distinct-aggregate.js';
import type { HeldBytes } from './held-bytes.js';
import type { AggregateColumn, MergeSpec } from './merge-spec.js';
import { orderedFoldFactory, type RowFold } from './ordered-aggregate.js';
import { encodeInteger, partialAccumulator, type Accumulator } from './partial-aggregates.js';
import type { ResultColumns } from './result-columns.js';
import { checkCollation } from './text-collation.js';
import type { ColumnType } from './value-compare.js';

export type Row = (Buffer | null)[];

/** How the aggregates of one statement fold, set up once from the shards' column types (0A000 for what cannot). */
export class RowFolder {
  private readonly makers: (() => RowFold)[];
  private readonly hasWhole: boolean;

  constructor(
    private readonly aggregates: readonly AggregateColumn[],
    private readonly types: readonly ColumnType[],
    textCollation: string | null,
    held: HeldBytes,
  ) {
    this.makers = aggregates.map((a) => foldMaker(a, types, textCollation, held));
    this.hasWhole = aggregates.some((a) => a.fn === 'whole');
  }

  /** A merged row starting from `first` (kept: pass a copy that outlives the frame). */
  start(first: Row, shard: number): MergedRow {
    const row = new MergedRow(
      first,
      shard,
      this.aggregates,
      this.makers.map((make) => make()),
      this.hasWhole,
    );
    row.add(first, shard, true);
    return row;
  }

  /** The one row of aggregates over no rows at all: count 0, everything else NULL. */
  emptyRow(): Row {
    const out: Row = this.types.map(() => null);
    for (const a of this.aggregates) {
      if (a.fn === 'count') out[a.column] = encodeInteger(0n, typeAt(this.types, a.column));
    }
    return out;
  }
}

/**
 * How the spec's aggregates fold, set up from the result's column types (at the first row: 0A000 now for what cannot be
 * merged — min/max of text in a collation the proxy cannot reproduce among them).
 */
export function rowFolderFor(spec: MergeSpec, columns: ResultColumns, held: HeldBytes): RowFolder {
  const aggregates = spec.aggregates ?? [];
  const types =
    aggregates.length > 0 || spec.isGrandTotal === true ? columns.columnTypes('an aggregate') : [];
  for (const { column, fn } of aggregates) {
    if (fn === 'min' || fn === 'max')
      checkCollation(spec.textCollation, typeAt(types, column), false, `${fn}()`);
  }
  return new RowFolder(aggregates, types, spec.textCollation ?? null, held);
}

export class MergedRow {
  constructor(
    private readonly first: Row,
    private readonly shard: number,
    private readonly aggregates: readonly AggregateColumn[],
    private readonly folds: readonly RowFold[],
    private readonly hasWhole: boolean,
  ) {}

  /** Fold another partial row of the group (its values may be views into a reused buffer). */
  add(values: readonly (Buffer | null)[], shard: number, isFirst = false): void {
    if (!isFirst && this.hasWhole && shard !== this.shard) {
      throw PgError.featureNotSupported(
        'a group grouped by the sharding key has rows on several shards (a NULL key from an outer join?), so its ' +
          'aggregates cannot be merged across shards',
        'Filter out the NULL sharding key, or route the query to one shard.',
      );
    }
    for (const fold of this.folds) fold.add(values);
  }

  result(): Row {
    const out = this.first.slice();
    this.aggregates.forEach((a, i) => {
      if (a.fn !== 'whole') out[a.column] = this.folds[i].result();
    });
    return out;
  }
}

function typeAt(types: readonly ColumnType[], column: number): ColumnType {
  const type = types[column];
  if (type === undefined)
    throw PgError.internal(`column ${column + 1} is beyond the ${types.length} described columns`);
  return type;
}

/** The per-group fold of one aggregate column, checked against the column types now. */
function foldMaker(
  a: AggregateColumn,
  types: readonly ColumnType[],
  textCollation: string | null,
  held: HeldBytes,
): () => RowFold {
  const { column } = a;
  const resultType = typeAt(types, column);
  if (a.distinctColumn !== undefined) {
    const distinct = a.distinctColumn;
    const make = distinctAccumulatorFactory(
      a.fn as 'count' | 'sum' | 'avg',
      typeAt(types, distinct),
      resultType,
      held,
    );
    return () => new ColumnFold(make(), distinct);
  }
  switch (a.fn) {
    case 'whole':
      return () => WHOLE;
    case 'string_agg':
    case 'array_agg':
      if (a.ordered === undefined) throw PgError.internal(`${a.fn} without its ordered arrays`);
      return orderedFoldFactory(a.fn, a.ordered, types, resultType, textCollation, held);
    case 'avg': {
      const countColumn = a.countColumn as number;
      const countType = typeAt(types, countColumn);
      new AverageAccumulator(resultType, countType); // refuses now (0A000) an avg it cannot divide
      return () => new AverageFold(new AverageAccumulator(resultType, countType), column, countColumn);
    }
    default: {
      const fn = a.fn;
      return () => new ColumnFold(partialAccumulator(fn, resultType), column);
    }
  }
}

const WHOLE: RowFold = { add: () => undefined, result: () => null };

/** One column's accumulator, fed that column of each row (a class: one object per group and aggregate). */
class ColumnFold implements RowFold {
  constructor(
    private readonly acc: Accumulator,
    private readonly column: number,
  ) {}

  add(row: readonly (Buffer | null)[]): void {
    this.acc.add(row[this.column] ?? null);
  }

  result(): Buffer | null {
    return this.acc.result();
  }
}

class AverageFold implements RowFold {
  constructor(
    private readonly acc: AverageAccumulator,
    private readonly sumColumn: number,
    private readonly countColumn: number,
  ) {}

  add(row: readonly (Buffer | null)[]): void {
    this.acc.add(row[this.sumColumn] ?? null, row[this.countColumn] ?? null);
  }

  result(): Buffer | null {
    return this.acc.result();
  }
}

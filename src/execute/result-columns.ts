// The result's columns in a merge: their types as the shards describe them (the spec's when the router knows better,
// else the RowDescription seen; 0A000 when a merge needs them and there are neither), and as the client sees them —
// hidden columns dropped, avg columns (sum(x) on the shards) typed as avg's result.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { averageType } from './average.js';
import type { MergeSpec } from './merge-spec.js';
import { TypeOid, type ColumnType } from './value-compare.js';

export class ResultColumns {
  /** Trailing columns of the shards' rows the client never sees. */
  readonly hiddenCount: number;
  /** Columns holding avg(x) (sum(x) on the shards). */
  private readonly avgColumns: ReadonlySet<number>;
  /**
   * The result's column types: from the Describe of the portal when there is one, else of the statement (formats all
   * text: they are only chosen at Bind).
   */
  private rowShape: ColumnType[] | null = null;
  /** The types of the portal, from a Describe the proxy added (noteColumnTypes): they come first. */
  private describedTypes: readonly ColumnType[] | null = null;

  constructor(private readonly spec: MergeSpec) {
    this.hiddenCount = spec.hiddenCount ?? 0;
    // avg merged from its sum and count (the shards run sum(x) there); avg(DISTINCT x) from values keeps avg's type.
    this.avgColumns = new Set(
      (spec.aggregates ?? []).filter((a) => a.countColumn !== undefined).map((a) => a.column),
    );
  }

  /**
   * A RowDescription's columns, as the shards sent it. One right after a ParameterDescription describes the statement,
   * whose formats say nothing of Bind's: it does not replace a description already seen.
   */
  noteDescription(shape: ColumnType[], followsParameterDescription: boolean): void {
    if (this.rowShape === null || !followsParameterDescription) this.rowShape = shape;
  }

  /** The portal's column types, described for the merge only (the first description counts). */
  noteColumnTypes(types: readonly ColumnType[]): void {
    this.describedTypes ??= types;
  }

  /** The shards' column types; `purpose` names what needs them in the 0A000 when they are unknown. */
  columnTypes(purpose: string): readonly ColumnType[] {
    const types = this.spec.columnTypes ?? this.describedTypes ?? this.rowShape;
    if (types === null) {
      throw PgError.featureNotSupported(
        `${purpose} across shards needs the result's column types, and this reply has no row description`,
        "Describe the portal before Execute (or let shardgate know the statement's result types).",
      );
    }
    return types;
  }

  /** The merged rows' column types: an avg column has avg's result type, not its sum's. */
  mergedTypes(types: readonly ColumnType[]): readonly ColumnType[] {
    if (this.avgColumns.size === 0) return types;
    return types.map((t, i) =>
      this.avgColumns.has(i) ? { typeOid: averageType(t.typeOid), format: t.format } : t,
    );
  }

  /**
   * The RowDescription the client gets: hidden columns dropped, avg columns (sum(x) on the shards) described as
   * avg's result type — numeric, or float8 for float8 input.
   */
  clientRowDescription(frame: Buffer): Buffer {
    const count = frame.readInt16BE(5);
    const keep = count - this.hiddenCount;
    if (keep < 0)
      throw PgError.internal(
        `the shards returned ${count} columns, fewer than the ${this.hiddenCount} hidden ones`,
      );
    const out = Buffer.from(frame);
    let pos = 7;
    for (let i = 0; i < keep; i++) {
      pos = out.indexOf(0, pos) + 1; // field name
      if (this.avgColumns.has(i)) {
        const oid = averageType(out.readUInt32BE(pos + 6));
        out.writeUInt32BE(oid, pos + 6);
        out.writeInt16BE(oid === TypeOid.float8 ? 8 : -1, pos + 10); // type size
        out.writeInt32BE(-1, pos + 12); // type modifier
      }
      pos += 18;
    }
    out.writeInt32BE(pos - 1, 1);
    out.writeInt16BE(keep, 5);
    return out.subarray(0, pos);
  }
}

/** `types[column]`, or XX000 when the description has fewer columns. */
export function columnType<T extends ColumnType>(types: readonly T[], column: number): T {
  const type = types[column];
  if (type === undefined)
    throw PgError.internal(`column ${column + 1} is beyond the ${types.length} described columns`);
  return type;
}

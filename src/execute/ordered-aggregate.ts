// string_agg / array_agg with ORDER BY inside, merged across shards. For each group a shard returns hidden arrays:
// `array_agg(x ORDER BY k1, k2…)` and, per key, `array_agg(ki ORDER BY k1, k2…)` (FILTER kept on each), so element i
// of every array belongs to one input row. The proxy gathers every partial group's elements and sorts them by the
// keys — as PostgreSQL compares them (value-compare.ts), NULLS FIRST/LAST and DESC as written; rows with equal keys
// keep an order PostgreSQL leaves undefined too — then builds the result: string_agg joins the non-NULL values with
// the (constant) delimiter, array_agg writes an array in the result column's format. Key types the proxy cannot order
// exactly (user types, arrays, json…) and text keys under a collation that is not byte order (unless the key says
// COLLATE "C") are refused with 0A000. Elements held count against the statement's bound (held-bytes.ts).
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { HELD_VALUE_OVERHEAD_BYTES, type HeldBytes } from './held-bytes.js';
import type { OrderedColumns, SortKey } from './merge-spec.js';
import { elementTypeOf, readArray, writeBinaryArray, writeTextArray } from './pg-array.js';
import {
  comparatorFor,
  Format,
  hasTypeOrder,
  isCollatedType,
  TypeOid,
  type ColumnType,
  type ValueComparator,
} from './value-compare.js';

export type OrderedFn = 'string_agg' | 'array_agg';

/** The folding of one group's partial rows into the aggregate's value. */
export interface RowFold {
  add(row: readonly (Buffer | null)[]): void;
  result(): Buffer | null;
}

interface Entry {
  readonly value: Buffer | null;
  readonly keys: readonly (Buffer | null)[];
}

/**
 * Checks that the aggregate can be merged for these column types (0A000 otherwise) and returns the factory of its
 * per-group folds. `textCollation`: the database's collation when text does not sort by bytes there.
 */
export function orderedFoldFactory(
  fn: OrderedFn,
  columns: OrderedColumns,
  types: readonly ColumnType[],
  resultType: ColumnType,
  textCollation: string | null,
  held: HeldBytes,
): () => RowFold {
  const label = `${fn}(… ORDER BY …)`;
  if (fn === 'string_agg' && resultType.typeOid !== TypeOid.text) {
    throw PgError.featureNotSupported(
      `string_agg across shards of type OID ${resultType.typeOid} is not supported (only text)`,
      'Aggregate text values, or route the query to one shard.',
    );
  }
  const valuesType = typeAt(types, columns.valuesColumn);
  if (fn === 'array_agg' && valuesType.format !== resultType.format)
    throw PgError.internal('array_agg across shards: its hidden values do not have the result format');
  const keyTypes = columns.keys.map((k) => typeAt(types, k.column));
  const comparators = new KeyComparators(label, columns.keys, keyTypes, textCollation);
  return () => new OrderedFold(fn, label, columns, valuesType, keyTypes, comparators, held);
}

function typeAt(types: readonly ColumnType[], column: number): ColumnType {
  const type = types[column];
  if (type === undefined)
    throw PgError.internal(`column ${column + 1} is beyond the ${types.length} described columns`);
  return type;
}

/** The keys' comparators, made once their element types are known (text format: at once; binary: from the data). */
class KeyComparators {
  private readonly comparators: (ValueComparator | null)[];

  constructor(
    private readonly label: string,
    private readonly keys: readonly SortKey[],
    private readonly keyTypes: readonly ColumnType[],
    private readonly textCollation: string | null,
  ) {
    this.comparators = keyTypes.map((t) => {
      if (t.format === Format.Binary) return null;
      const element = elementTypeOf(t.typeOid);
      if (element === null) throw this.unordered(t.typeOid);
      return this.comparatorFor(element, 0);
    });
  }

  /** The comparator of key `i`, whose array's binary header named `elementOid`. */
  at(i: number, elementOid: number): ValueComparator {
    return (this.comparators[i] ??= this.comparatorFor(elementOid, i));
  }

  private comparatorFor(elementOid: number, i: number): ValueComparator {
    const type: ColumnType = { typeOid: elementOid, format: this.keyTypes[i].format };
    if (!hasTypeOrder(type)) throw this.unordered(elementOid);
    const key = this.keys[i];
    const isByteOrder =
      key.isByteCollated === true || (key.collation === undefined && this.textCollation === null);
    if (isCollatedType(type) && !isByteOrder) {
      throw PgError.featureNotSupported(
        `ORDER BY text inside ${this.label} across shards would need collation "${key.collation ?? this.textCollation ?? ''}", which shardgate cannot reproduce here`,
        'Order by the text with COLLATE "C" (byte order) inside the aggregate, or route the query to one shard.',
      );
    }
    return comparatorFor(type);
  }

  private unordered(oid: number): PgError {
    return PgError.featureNotSupported(
      `ORDER BY inside ${this.label} across shards cannot order values of type OID ${oid} as PostgreSQL does`,
      'Order by a column of a built-in scalar type (integer, numeric, text, timestamp, …), or route the query to one shard.',
    );
  }
}

class OrderedFold implements RowFold {
  private readonly entries: Entry[] = [];
  /** array_agg in binary format: the element type, from the hidden array's header. */
  private elementOid = 0;

  constructor(
    private readonly fn: OrderedFn,
    private readonly label: string,
    private readonly columns: OrderedColumns,
    private readonly valuesType: ColumnType,
    private readonly keyTypes: readonly ColumnType[],
    private readonly comparators: KeyComparators,
    private readonly held: HeldBytes,
  ) {}

  add(row: readonly (Buffer | null)[]): void {
    const cell = row[this.columns.valuesColumn];
    if (cell === null || cell === undefined) return; // no input row in this partial group (FILTER)
    // Copies: the elements are views into the arrays, which outlive the frame they came in.
    const values = readArray(Buffer.from(cell), this.valuesType.format);
    this.elementOid = values.elementOid;
    let bytes = cell.length;
    const keyElements = this.columns.keys.map((k, i) => {
      const keyCell = row[k.column];
      if (keyCell === null || keyCell === undefined)
        throw PgError.internal(`${this.label}: a shard returned values without their sort keys`);
      bytes += keyCell.length;
      const array = readArray(Buffer.from(keyCell), this.keyTypes[i].format);
      if (array.elements.length !== values.elements.length)
        throw PgError.internal(`${this.label}: a shard returned sort keys that do not match its values`);
      if (this.keyTypes[i].format === Format.Binary) this.comparators.at(i, array.elementOid);
      return array.elements;
    });
    this.held.charge(bytes + values.elements.length * HELD_VALUE_OVERHEAD_BYTES, this.label);
    for (let e = 0; e < values.elements.length; e++) {
      this.entries.push({ value: values.elements[e], keys: keyElements.map((k) => k[e]) });
    }
  }

  result(): Buffer | null {
    if (this.entries.length === 0) return null;
    const keys = this.columns.keys;
    const comparators = keys.map((_, i) => this.comparators.at(i, 0));
    this.entries.sort((a, b) => {
      for (let i = 0; i < keys.length; i++) {
        const x = a.keys[i];
        const y = b.keys[i];
        if (x === null || y === null) {
          if (x === y) continue;
          return (x === null) === keys[i].isNullsFirst ? -1 : 1;
        }
        const c = comparators[i](x, y);
        if (c !== 0) return keys[i].isDescending ? -c : c;
      }
      return 0;
    });
    const values = this.entries.map((e) => e.value);
    if (this.fn === 'array_agg') {
      return this.valuesType.format === Format.Binary
        ? writeBinaryArray(values, this.elementOid)
        : writeTextArray(values);
    }
    const present = values.filter((v): v is Buffer => v !== null);
    if (present.length === 0) return null;
    const delimiter = this.columns.delimiter ?? null;
    const parts: Buffer[] = [];
    present.forEach((v, i) => {
      if (i > 0 && delimiter !== null) parts.push(delimiter);
      parts.push(v);
    });
    return Buffer.concat(parts);
  }
}

// Unit tests for ordered-aggregate: string_agg / array_agg with ORDER BY inside, merged from the shards' ordered
// arrays of values and keys — ASC/DESC, NULLS FIRST/LAST, several keys, text and binary arrays, the delimiter, and
// what is refused (keys it cannot order, collated text).
import { describe, expect, it } from 'vitest';
import { HeldBytes } from '../../../src/execute/held-bytes.js';
import type { OrderedColumns, SortKey } from '../../../src/execute/merge-spec.js';
import { orderedFoldFactory, type OrderedFn } from '../../../src/execute/ordered-aggregate.js';
import { readBinaryArray, writeBinaryArray } from '../../../src/execute/pg-array.js';
import { TypeOid, type ColumnType } from '../../../src/execute/value-compare.js';

const TEXT_ARRAY = 1009;
const INT4_ARRAY = 1007;
const INT8_ARRAY = 1016;
const NUMERIC_ARRAY = 1231;
const text = (typeOid: number): ColumnType => ({ typeOid, format: 0 });
const binary = (typeOid: number): ColumnType => ({ typeOid, format: 1 });
const key = (column: number, isDescending = false, isNullsFirst = isDescending): SortKey => ({
  column,
  isDescending,
  isNullsFirst,
});

/** Rows of [placeholder, values array, key arrays…]. */
function merge(
  fn: OrderedFn,
  columns: OrderedColumns,
  types: ColumnType[],
  rows: (string | Buffer | null)[][],
  textCollation: string | null = null,
): Buffer | null {
  const fold = orderedFoldFactory(fn, columns, types, types[0], textCollation, new HeldBytes())();
  for (const row of rows) fold.add(row.map((v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v)));
  return fold.result();
}

const str = (v: Buffer | null): string | null => (v === null ? null : v.toString('utf8'));

describe('string_agg(x, d ORDER BY …)', () => {
  const types = [text(TypeOid.text), text(TEXT_ARRAY), text(INT8_ARRAY)];

  it('interleaves the shards’ elements by the key and joins the non-NULL values', () => {
    const columns = { valuesColumn: 1, keys: [key(2)], delimiter: Buffer.from(', ') };
    const out = merge('string_agg', columns, types, [
      [null, '{a,NULL,"c d"}', '{1,4,6}'],
      [null, '{b,"x\\"y"}', '{2,5}'],
      [null, null, null], // a shard with no row in the group
    ]);
    expect(str(out)).toBe('a, b, x"y, c d');
  });

  it('DESC, NULLS FIRST keys; a NULL delimiter joins with nothing; all-NULL values give NULL', () => {
    const columns = { valuesColumn: 1, keys: [key(2, true, true)], delimiter: null };
    expect(
      str(
        merge('string_agg', columns, types, [
          [null, '{a,b}', '{1,NULL}'],
          [null, '{c}', '{2}'],
        ]),
      ),
    ).toBe('bca');
    expect(merge('string_agg', columns, types, [[null, '{NULL}', '{1}']])).toBeNull();
    expect(merge('string_agg', columns, types, [])).toBeNull();
  });

  it('several keys: the second breaks the first one’s ties', () => {
    const columns = { valuesColumn: 1, keys: [key(2), key(3, true)], delimiter: Buffer.from('|') };
    const four = [...types, text(NUMERIC_ARRAY)];
    const out = merge('string_agg', columns, four, [
      [null, '{p,q}', '{1,2}', '{1.5,9}'],
      [null, '{r,s}', '{1,2}', '{2.50,1}'],
    ]);
    expect(str(out)).toBe('r|p|q|s');
  });
});

describe('array_agg(x ORDER BY …)', () => {
  it('text: writes the merged array as array_out does', () => {
    const types = [text(TEXT_ARRAY), text(TEXT_ARRAY), text(INT4_ARRAY)];
    const columns = { valuesColumn: 1, keys: [key(2)] };
    const out = merge('array_agg', columns, types, [
      [null, '{"a b",NULL}', '{3,1}'],
      [null, '{"NULL",""}', '{2,4}'],
    ]);
    expect(str(out)).toBe('{NULL,"NULL","a b",""}');
  });

  it('binary: reads the shards’ binary arrays and writes one of the same element type', () => {
    const int = (n: number): Buffer => {
      const out = Buffer.alloc(4);
      out.writeInt32BE(n);
      return out;
    };
    const types = [binary(INT4_ARRAY), binary(INT4_ARRAY), binary(INT4_ARRAY)];
    const columns = { valuesColumn: 1, keys: [key(2, true)] };
    const out = merge('array_agg', columns, types, [
      [
        null,
        writeBinaryArray([int(10), int(30)], TypeOid.int4),
        writeBinaryArray([int(1), int(3)], TypeOid.int4),
      ],
      [
        null,
        writeBinaryArray([int(20), null], TypeOid.int4),
        writeBinaryArray([int(2), int(-1)], TypeOid.int4),
      ],
    ]);
    const read = readBinaryArray(out as Buffer);
    expect(read.elementOid).toBe(TypeOid.int4);
    expect(read.elements.map((e) => (e === null ? null : e.readInt32BE(0)))).toEqual([30, 20, 10, null]);
  });
});

describe('what it refuses', () => {
  const columns = { valuesColumn: 1, keys: [key(2)], delimiter: Buffer.from(',') };

  it('text keys under a collation that is not byte order, unless they say COLLATE "C"', () => {
    const types = [text(TypeOid.text), text(TEXT_ARRAY), text(TEXT_ARRAY)];
    expect(() => merge('string_agg', columns, types, [], 'en_US.UTF-8')).toThrow(
      /would need collation "en_US.UTF-8".*/,
    );
    const byBytes = { ...columns, keys: [{ ...key(2), isByteCollated: true }] };
    expect(str(merge('string_agg', byBytes, types, [[null, '{b,a}', '{B,a}']], 'en_US.UTF-8'))).toBe('b,a');
    const named = { ...columns, keys: [{ ...key(2), collation: 'de-x-icu' }] };
    expect(() => merge('string_agg', named, types, [])).toThrow(/collation "de-x-icu"/);
  });

  it('key types it cannot order as PostgreSQL does, and string_agg of bytea', () => {
    const jsonbArray = 3807;
    expect(() =>
      merge('string_agg', columns, [text(TypeOid.text), text(TEXT_ARRAY), text(jsonbArray)], []),
    ).toThrow(/type OID 3807/);
    expect(() =>
      merge('string_agg', columns, [text(TypeOid.bytea), text(1001), text(INT4_ARRAY)], []),
    ).toThrow(/only text/);
  });

  it('values and keys of different lengths are a shard fault', () => {
    const types = [text(TypeOid.text), text(TEXT_ARRAY), text(INT4_ARRAY)];
    expect(() => merge('string_agg', columns, types, [[null, '{a,b}', '{1}']])).toThrow(/do not match/);
  });
});

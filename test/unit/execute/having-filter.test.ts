// The HAVING evaluator applied to merged groups: comparison operators, SQL three-valued logic (NULL), the comparison
// domain chosen by the operand types (exact decimals, doubles with float4 widened, bytes, bpchar), untyped constants
// taking the column's type, binary values, and constants written with exponents.
import { describe, expect, it } from 'vitest';
import {
  havingPasses,
  plainDecimal,
  type HavingFilter,
  type HavingValue,
} from '../../../src/execute/having-filter.js';
import { numericTextToBinary, TypeOid } from '../../../src/execute/value-compare.js';

const col = (column: number): HavingValue => ({ kind: 'column', column });
const lit = (value: string | null, typeOid = 0): HavingValue => ({
  kind: 'constant',
  value: value === null ? null : Buffer.from(value),
  format: 0,
  typeOid,
});
const bin = (value: Buffer, typeOid: number): HavingValue => ({
  kind: 'constant',
  value,
  format: 1,
  typeOid,
});
const cmp = (
  left: HavingValue,
  op: '=' | '<>' | '<' | '<=' | '>' | '>=',
  right: HavingValue,
): HavingFilter => ({
  kind: 'compare',
  op,
  left,
  right,
});
const row = (...values: (string | null)[]): (Buffer | null)[] =>
  values.map((v) => (v === null ? null : Buffer.from(v)));
const t = (typeOid: number, format = 0): { typeOid: number; format: number } => ({ typeOid, format });

/** A row of (count int8, sum numeric, status text, avg float8, score float4, code bpchar). */
const TYPES = [
  t(TypeOid.int8),
  t(TypeOid.numeric),
  t(TypeOid.text),
  t(TypeOid.float8),
  t(TypeOid.float4),
  t(TypeOid.bpchar),
];
const ROW = row('12', '-3.50', 'paid', '2.5', '0.1', 'ab  ');
const passes = (f: HavingFilter, r = ROW): boolean => havingPasses(f, r, TYPES);

describe('comparisons', () => {
  it('applies each operator, constant on either side', () => {
    expect(passes(cmp(col(0), '>', lit('11')))).toBe(true);
    expect(passes(cmp(col(0), '>', lit('12')))).toBe(false);
    expect(passes(cmp(col(0), '>=', lit('12')))).toBe(true);
    expect(passes(cmp(col(0), '<', lit('12.5')))).toBe(true);
    expect(passes(cmp(col(0), '<=', lit('11.99')))).toBe(false);
    expect(passes(cmp(col(0), '=', lit('12.000')))).toBe(true);
    expect(passes(cmp(col(0), '<>', lit('12')))).toBe(false);
    expect(passes(cmp(lit('13'), '>', col(0)))).toBe(true);
  });

  it('compares integers and numerics exactly, beyond doubles', () => {
    const big = row('9007199254740993');
    expect(havingPasses(cmp(col(0), '>', lit('9007199254740992')), big, [t(TypeOid.int8)])).toBe(true);
    expect(passes(cmp(col(1), '<', lit('-3.4999999999999999999')))).toBe(true);
    expect(passes(cmp(col(1), '=', lit('-35e-1')))).toBe(true);
  });

  it('compares in double precision when a side is float, widening float4 exactly', () => {
    expect(passes(cmp(col(3), '>', lit('2.4999')))).toBe(true);
    // float4 0.1 is 0.100000001490116…: above the numeric literal 0.1 (float48gt), equal to the quoted '0.1'
    // (which becomes a float4).
    expect(passes(cmp(col(4), '>', lit('0.1', TypeOid.numeric)))).toBe(true);
    expect(passes(cmp(col(4), '>', lit('0.1')))).toBe(false);
    expect(passes(cmp(col(4), '=', lit('0.1')))).toBe(true);
    expect(passes(cmp(col(0), '<', col(3)))).toBe(false);
  });

  it('compares text by bytes and bpchar without trailing spaces', () => {
    expect(passes(cmp(col(2), '=', lit('paid')))).toBe(true);
    expect(passes(cmp(col(2), '>', lit('Paid')))).toBe(true); // 'p' > 'P' in the C collation
    expect(passes(cmp(col(2), '<', lit('pai')))).toBe(false);
    expect(passes(cmp(col(5), '=', lit('ab')))).toBe(true);
  });

  it('reads binary parameters by their type', () => {
    const i4 = Buffer.alloc(4);
    i4.writeInt32BE(12);
    expect(passes(cmp(col(0), '=', bin(i4, TypeOid.int4)))).toBe(true);
    expect(passes(cmp(col(1), '>', bin(numericTextToBinary('-4'), TypeOid.numeric)))).toBe(true);
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(2.5);
    expect(passes(cmp(col(3), '=', bin(f8, TypeOid.float8)))).toBe(true);
    expect(passes(cmp(col(0), '<', bin(f8, TypeOid.float8)))).toBe(false);
  });

  it('reads binary merged columns', () => {
    const count = Buffer.alloc(8);
    count.writeBigInt64BE(7n);
    expect(havingPasses(cmp(col(0), '>', lit('6')), [count], [t(TypeOid.int8, 1)])).toBe(true);
  });

  it('refuses types it cannot order, and text against numbers, with 0A000', () => {
    expect(() => havingPasses(cmp(col(0), '>', lit('1 day')), row('2 days'), [t(1186)])).toThrow(
      expect.objectContaining({ code: '0A000' }),
    );
    expect(() => passes(cmp(col(2), '>', col(0)))).toThrow(/cannot compare/);
  });
});

describe('three-valued logic', () => {
  const unknown = cmp(col(0), '=', lit(null));
  const yes = cmp(col(0), '=', lit('12'));
  const no = cmp(col(0), '=', lit('13'));

  it('a comparison with NULL is unknown: the group does not pass, nor under NOT', () => {
    expect(passes(unknown)).toBe(false);
    expect(passes({ kind: 'not', arg: unknown })).toBe(false);
    expect(passes(cmp(col(0), '>', lit('1')), row(null))).toBe(false);
  });

  it('AND / OR follow SQL: unknown AND false is false, unknown OR true is true', () => {
    expect(passes({ kind: 'and', args: [unknown, no] })).toBe(false);
    expect(passes({ kind: 'not', arg: { kind: 'and', args: [unknown, no] } })).toBe(true);
    expect(passes({ kind: 'and', args: [unknown, yes] })).toBe(false);
    expect(passes({ kind: 'or', args: [unknown, yes] })).toBe(true);
    expect(passes({ kind: 'not', arg: { kind: 'or', args: [unknown, no] } })).toBe(false);
    expect(passes({ kind: 'or', args: [no, { kind: 'not', arg: no }] })).toBe(true);
  });
});

describe('plainDecimal', () => {
  it.each([
    ['7e2', '700'],
    ['1.5E-3', '0.0015'],
    [' -12.50 ', '-12.50'],
    ['.5', '0.5'],
    ['+3.', '3'],
    ['-0', '0'],
    ['00012', '12'],
    ['nan', 'NaN'],
    ['-Infinity', '-Infinity'],
  ])('%s → %s', (input, expected) => {
    expect(plainDecimal(input)).toBe(expected);
  });

  it('refuses what is not a number', () => {
    expect(() => plainDecimal('abc')).toThrow(/not a number/);
    expect(() => plainDecimal('.')).toThrow(/not a number/);
  });
});

// avg() merged from the shards' sum(x) and count(x): numeric_div's result scale (select_div_scale) and rounding,
// float8 division, NULL for no rows, text and binary formats. Expected texts are PostgreSQL 15's own avg() output.
import { describe, expect, it } from 'vitest';
import { averageType, divideNumeric, mergeAverage } from '../../../src/execute/average.js';
import { numericBinaryToText, numericTextToBinary, TypeOid } from '../../../src/execute/value-compare.js';

const text = (oid: number): { typeOid: number; format: number } => ({ typeOid: oid, format: 0 });
const binary = (oid: number): { typeOid: number; format: number } => ({ typeOid: oid, format: 1 });
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
function int8(n: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(n);
  return out;
}
function float8(x: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeDoubleBE(x);
  return out;
}

describe('divideNumeric (numeric_div of the sum by the count)', () => {
  it.each([
    // [sum, count, PostgreSQL's avg]
    ['3', 2n, '1.5000000000000000'], // avg(1, 2)
    ['6', 3n, '2.0000000000000000'], // avg(1, 2, 3)
    ['-7', 2n, '-3.5000000000000000'],
    ['0', 2n, '0.00000000000000000000'], // avg(-1, 1): a zero dividend estimates one more digit
    ['1', 3n, '0.33333333333333333333'],
    ['2', 3n, '0.66666666666666666667'], // rounded half away from zero
    ['-2', 3n, '-0.66666666666666666667'],
    ['3.0', 6n, '0.50000000000000000000'],
    ['0.00003', 2n, '0.000015000000000000000000'],
    ['0.00000000000000000001', 2n, '0.0000000000000000000050000000000000000000'],
    ['100000', 2n, '50000.000000000000'],
    ['12345678901237', 2n, '6172839450618.5000'],
    ['100000001.00', 2n, '50000000.500000000000'], // never below the sum's scale
    ['NaN', 2n, 'NaN'],
    ['Infinity', 2n, 'Infinity'],
    ['-Infinity', 5n, '-Infinity'],
  ])('%s / %s = %s', (sum, count, expected) => {
    expect(divideNumeric(sum, count)).toBe(expected);
  });

  it('keeps exact digits far beyond int8 and doubles', () => {
    // avg of int8 max twice: 16+ significant digits already, so no fraction digits.
    expect(divideNumeric('18446744073709551614', 2n)).toBe('9223372036854775807');
    // avg of int8 min three times and 1: -6917529027641081855.75 to 0 fraction digits.
    expect(divideNumeric('-27670116110564327423', 4n)).toBe('-6917529027641081856'); // rounded half away from zero
  });
});

describe('mergeAverage', () => {
  it('adds the shards’ sums and counts, then divides (int8 sums of int2/int4, text)', () => {
    const avg = mergeAverage(
      [b('3'), b('4'), null],
      text(TypeOid.int8),
      [b('2'), b('1'), b('0')],
      text(TypeOid.int8),
    );
    expect(avg?.toString()).toBe('2.3333333333333333');
  });

  it('gives NULL when no shard counted a value', () => {
    expect(
      mergeAverage([null, null], text(TypeOid.numeric), [b('0'), b('0')], text(TypeOid.int8)),
    ).toBeNull();
    expect(mergeAverage([], text(TypeOid.numeric), [], text(TypeOid.int8))).toBeNull();
  });

  it('reads and writes binary numeric, int8 sums and counts', () => {
    const avg = mergeAverage(
      [numericTextToBinary('1.25'), numericTextToBinary('-0.50')],
      binary(TypeOid.numeric),
      [int8(1n), int8(2n)],
      binary(TypeOid.int8),
    );
    expect(numericBinaryToText(avg as Buffer)).toBe('0.25000000000000000000');
    const fromInt8 = mergeAverage([int8(5n)], binary(TypeOid.int8), [int8(2n)], binary(TypeOid.int8));
    expect(numericBinaryToText(fromInt8 as Buffer)).toBe('2.5000000000000000');
  });

  it('divides float8 sums in double precision, printed as float8out does', () => {
    const avg = mergeAverage([b('3'), b('4')], text(TypeOid.float8), [b('2'), b('1')], text(TypeOid.int8));
    expect(avg?.toString()).toBe('2.3333333333333335');
    const bin = mergeAverage(
      [float8(1.5), float8(0)],
      binary(TypeOid.float8),
      [int8(1n), int8(1n)],
      binary(TypeOid.int8),
    );
    expect(bin?.readDoubleBE(0)).toBe(0.75);
    expect(
      mergeAverage([b('Infinity')], text(TypeOid.float8), [b('1')], text(TypeOid.int8))?.toString(),
    ).toBe('Infinity');
  });
});

describe('averageType', () => {
  it('is numeric for integer and numeric input, float8 for float8', () => {
    expect(averageType(TypeOid.int8)).toBe(TypeOid.numeric);
    expect(averageType(TypeOid.numeric)).toBe(TypeOid.numeric);
    expect(averageType(TypeOid.float8)).toBe(TypeOid.float8);
  });

  it('refuses a single-precision sum (the router sends real as x * 1, a float8) and other types with 0A000', () => {
    expect(() => averageType(TypeOid.float4)).toThrow(/avg\(\) of real/);
    expect(() => averageType(1186)).toThrow(expect.objectContaining({ code: '0A000' }));
  });
});

// Unit tests for value-compare: PostgreSQL's order per type and format, exact decimal sums, numeric binary codec,
// float output, and combining aggregate partials.
import { describe, expect, it } from 'vitest';
import { combineValues } from '../../../src/execute/partial-aggregates.js';
import {
  addDecimalTexts,
  comparatorFor,
  compareDecimalText,
  formatFloat,
  hasTypeOrder,
  numericBinaryToText,
  numericTextToBinary,
  parseIsoDateTime,
  TypeOid,
  type ColumnType,
} from '../../../src/execute/value-compare.js';

const text = (typeOid: number): ColumnType => ({ typeOid, format: 0 });
const binary = (typeOid: number): ColumnType => ({ typeOid, format: 1 });
const b = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Sorts `values` with the comparator of `type`. */
function sorted(type: ColumnType, values: Buffer[]): Buffer[] {
  const compare = comparatorFor(type);
  return [...values].sort(compare);
}

describe('compareDecimalText', () => {
  const sign = (x: number): number => Math.sign(x);
  it.each([
    ['1', '2', -1],
    ['10', '9', 1],
    ['-10', '-9', -1],
    ['-1', '0', -1],
    ['0', '-0.0001', 1],
    ['0.1', '0.10', 0],
    ['0.1', '0.09', 1],
    ['-0.1', '-0.09', -1],
    ['123.456', '123.4559999', 1],
    ['9223372036854775807', '9223372036854775806', 1],
    ['9007199254740993', '9007199254740992', 1],
    ['NaN', 'Infinity', 1],
    ['Infinity', '99999999999999999999', 1],
    ['-Infinity', '-99999999999999999999', -1],
    ['NaN', 'NaN', 0],
    ['-Infinity', 'Infinity', -1],
  ])('%s vs %s → %i', (x, y, expected) => {
    expect(sign(compareDecimalText(b(x), b(y)))).toBe(expected);
    expect(sign(compareDecimalText(b(y), b(x)))).toBe(-expected || 0);
  });
});

describe('comparatorFor', () => {
  it('float text: numeric order, NaN greatest, exponents', () => {
    const got = sorted(
      text(TypeOid.float8),
      ['NaN', '1e+21', '-Infinity', '2.5', '-1e-05', 'Infinity', '10'].map(b),
    );
    expect(got.map(String)).toEqual(['-Infinity', '-1e-05', '2.5', '10', '1e+21', 'Infinity', 'NaN']);
  });

  it('binary int8 and float8', () => {
    const int8 = (n: bigint): Buffer => {
      const out = Buffer.alloc(8);
      out.writeBigInt64BE(n);
      return out;
    };
    const got = sorted(binary(TypeOid.int8), [
      int8(2n ** 62n),
      int8(-1n),
      int8(-(2n ** 63n)),
      int8(0n),
      int8(2n ** 32n),
    ]);
    expect(got.map((x) => x.readBigInt64BE(0))).toEqual([-(2n ** 63n), -1n, 0n, 2n ** 32n, 2n ** 62n]);

    const f8 = (n: number): Buffer => {
      const out = Buffer.alloc(8);
      out.writeDoubleBE(n);
      return out;
    };
    const floats = sorted(binary(TypeOid.float8), [f8(NaN), f8(-2.5), f8(Infinity), f8(0.5), f8(-Infinity)]);
    expect(floats.map((x) => x.readDoubleBE(0))).toEqual([-Infinity, -2.5, 0.5, Infinity, NaN]);
  });

  it('binary numeric via its decimal value', () => {
    const values = ['-1.5', '100', '0.0001', 'NaN', '99.99'].map(numericTextToBinary);
    expect(sorted(binary(TypeOid.numeric), values).map(numericBinaryToText)).toEqual([
      '-1.5',
      '0.0001',
      '99.99',
      '100',
      'NaN',
    ]);
  });

  it('bpchar ignores trailing spaces', () => {
    const compare = comparatorFor(text(TypeOid.bpchar));
    expect(compare(b('ab  '), b('ab'))).toBe(0);
    expect(compare(b('ab '), b('ab\x01'))).toBeLessThan(0);
  });

  it('dates in ISO: BC before AD, five-digit years after four-digit ones', () => {
    const got = sorted(
      text(TypeOid.date),
      ['2024-01-01', 'infinity', '0001-01-01 BC', '10000-01-01', '0002-01-01 BC', '-infinity'].map(b),
    );
    expect(got.map(String)).toEqual([
      '-infinity',
      '0002-01-01 BC',
      '0001-01-01 BC',
      '2024-01-01',
      '10000-01-01',
      'infinity',
    ]);
  });

  it('timestamps with fractions; unparseable (non-ISO) text falls back to bytes', () => {
    const compare = comparatorFor(text(TypeOid.timestamp));
    expect(compare(b('2024-01-01 10:00:00.5'), b('2024-01-01 10:00:00.25'))).toBeGreaterThan(0);
    expect(compare(b('2024-01-01 10:00:00'), b('2024-01-01 10:00:00.000001'))).toBeLessThan(0);
    expect(compare(b('Mon Jan 01 10:00:00 2024'), b('Tue Jan 02 10:00:00 2024'))).toBeLessThan(0);
  });

  it('knows which types it orders exactly', () => {
    expect(hasTypeOrder(text(TypeOid.int8))).toBe(true);
    expect(hasTypeOrder(text(TypeOid.uuid))).toBe(true);
    expect(hasTypeOrder(binary(TypeOid.int4))).toBe(true);
    expect(hasTypeOrder(text(1186))).toBe(false); // interval
    expect(hasTypeOrder(text(50000))).toBe(false); // an enum
  });
});

describe('parseIsoDateTime', () => {
  it('reads offsets with minutes and seconds', () => {
    const out = new Float64Array(2);
    expect(parseIsoDateTime(b('1970-01-01 00:00:00+00'), out)).toBe(true);
    expect([...out]).toEqual([0, 0]);
    expect(parseIsoDateTime(b('1970-01-01 05:30:00.5+05:30'), out)).toBe(true);
    expect([...out]).toEqual([0, 500000]);
    expect(parseIsoDateTime(b('1900-01-01 00:00:00-00:01:15'), out)).toBe(true);
    expect(out[0]).toBe(-2208988800 + 75);
    expect(parseIsoDateTime(b('2024-13'), out)).toBe(false);
  });
});

describe('decimal sums and numeric binary', () => {
  it('adds exactly with the largest scale', () => {
    expect(addDecimalTexts(['1.50', '2.1'])).toBe('3.60');
    expect(addDecimalTexts(['-0.275', '0.275'])).toBe('0.000');
    expect(addDecimalTexts(['9223372036854775807', '9223372036854775807'])).toBe('18446744073709551614');
    expect(addDecimalTexts(['-5', '3.25'])).toBe('-1.75');
    expect(addDecimalTexts(['-0.5', '0.25'])).toBe('-0.25');
    expect(addDecimalTexts(['Infinity', '1'])).toBe('Infinity');
    expect(addDecimalTexts(['Infinity', '-Infinity'])).toBe('NaN');
    expect(addDecimalTexts(['NaN', '1'])).toBe('NaN');
  });

  it('round-trips numeric binary (numeric_send layout)', () => {
    for (const v of [
      '0',
      '0.00',
      '1',
      '-1',
      '10000',
      '12345.6789',
      '0.0001',
      '0.00000001',
      '-98765432109876543210.12',
      'NaN',
      'Infinity',
      '-Infinity',
    ]) {
      expect(numericBinaryToText(numericTextToBinary(v))).toBe(v);
    }
    // 12345.6 = digits [1, 2345, 6000], weight 1, dscale 1
    const bytes = numericTextToBinary('12345.6');
    expect([...bytes]).toEqual([0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 0x09, 0x29, 0x17, 0x70]);
  });

  it('prints floats as float8out/float4out do', () => {
    expect(formatFloat(0.1 + 0.2, false)).toBe('0.30000000000000004');
    expect(formatFloat(1e15, false)).toBe('1e+15');
    expect(formatFloat(123456789012345, false)).toBe('123456789012345');
    expect(formatFloat(0.0001, false)).toBe('0.0001');
    expect(formatFloat(0.00001, false)).toBe('1e-05');
    expect(formatFloat(-1.5e300, false)).toBe('-1.5e+300');
    expect(formatFloat(Math.fround(0.1), true)).toBe('0.1');
    expect(formatFloat(1e6, true)).toBe('1e+06');
    expect(formatFloat(123456, true)).toBe('123456');
  });
});

describe('combineValues', () => {
  it('count/sum/min/max with NULLs ignored and all-NULL → NULL', () => {
    expect(String(combineValues('count', text(TypeOid.int8), [b('2'), null, b('3')]))).toBe('5');
    expect(String(combineValues('sum', text(TypeOid.numeric), [b('1.1'), null, b('-0.05')]))).toBe('1.05');
    expect(String(combineValues('min', text(TypeOid.text), [b('b'), null, b('a')]))).toBe('a');
    expect(String(combineValues('max', text(TypeOid.int4), [b('9'), b('10'), null]))).toBe('10');
    expect(combineValues('sum', text(TypeOid.numeric), [null, null])).toBeNull();
  });

  it('binary numeric sum', () => {
    const sum = combineValues('sum', binary(TypeOid.numeric), ['0.5', '99999.75'].map(numericTextToBinary));
    expect(numericBinaryToText(sum as Buffer)).toBe('100000.25');
  });
});

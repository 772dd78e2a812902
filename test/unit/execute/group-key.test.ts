// Group keys (GROUP BY, DISTINCT, UNION across shards): values PostgreSQL's equality holds equal get one key, whatever
// bytes the shards sent — numeric scales, -0, bpchar padding, intervals of equal span — in text and binary format.
import { describe, expect, it } from 'vitest';
import {
  canonicalDecimal,
  equalityKeyFor,
  groupKey,
  groupKeysFor,
  intervalTextKey,
} from '../../../src/execute/group-key.js';
import { numericTextToBinary, TypeOid } from '../../../src/execute/value-compare.js';
import type { PgError } from '../../../src/errors/pg-error.js';

const TEXT = 0;
const BINARY = 1;
const INTERVAL = 1186;

function keyOf(typeOid: number, format: number, value: Buffer | string): string {
  const fn = equalityKeyFor({ typeOid, format }, 'UNION');
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return fn === null ? v.toString('latin1') : fn(v);
}

function float8(x: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b;
}

function interval(microseconds: bigint, days: number, months: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64BE(microseconds, 0);
  b.writeInt32BE(days, 8);
  b.writeInt32BE(months, 12);
  return b;
}

describe('equalityKeyFor', () => {
  it('numeric: the same value at any scale is one key (text and binary)', () => {
    for (const [a, b] of [
      ['1.0', '1.00'],
      ['1', '1.000'],
      ['-12.50', '-12.5'],
      ['0.00', '0'],
      ['100', '100.0'],
    ]) {
      expect(keyOf(TypeOid.numeric, TEXT, a)).toBe(keyOf(TypeOid.numeric, TEXT, b));
      expect(keyOf(TypeOid.numeric, BINARY, numericTextToBinary(a))).toBe(
        keyOf(TypeOid.numeric, BINARY, numericTextToBinary(b)),
      );
    }
    expect(keyOf(TypeOid.numeric, TEXT, '10')).not.toBe(keyOf(TypeOid.numeric, TEXT, '1.0'));
    expect(keyOf(TypeOid.numeric, TEXT, '1.01')).not.toBe(keyOf(TypeOid.numeric, TEXT, '1.1'));
    expect(keyOf(TypeOid.numeric, TEXT, 'NaN')).toBe('NaN');
    expect(keyOf(TypeOid.numeric, BINARY, numericTextToBinary('-Infinity'))).toBe('-Infinity');
  });

  it('canonicalDecimal strips trailing fraction zeros only', () => {
    expect(canonicalDecimal('120.500')).toBe('120.5');
    expect(canonicalDecimal('120')).toBe('120');
    expect(canonicalDecimal('-0.000')).toBe('0');
    expect(canonicalDecimal('-0')).toBe('0');
  });

  it('float: -0 = 0 and NaN = NaN; other values keep their bytes', () => {
    expect(keyOf(TypeOid.float8, TEXT, '-0')).toBe(keyOf(TypeOid.float8, TEXT, '0'));
    expect(keyOf(TypeOid.float4, TEXT, '1.5')).not.toBe(keyOf(TypeOid.float4, TEXT, '1.25'));
    expect(keyOf(TypeOid.float8, BINARY, float8(-0))).toBe(keyOf(TypeOid.float8, BINARY, float8(0)));
    const otherNaN = Buffer.from('7ff8000000000001', 'hex');
    expect(keyOf(TypeOid.float8, BINARY, otherNaN)).toBe(keyOf(TypeOid.float8, BINARY, float8(NaN)));
    expect(keyOf(TypeOid.float8, BINARY, float8(1.5))).not.toBe(keyOf(TypeOid.float8, BINARY, float8(-1.5)));
    const f4 = Buffer.alloc(4);
    f4.writeFloatBE(-0);
    expect(keyOf(TypeOid.float4, BINARY, f4)).toBe('0');
  });

  it('bpchar: trailing spaces do not count', () => {
    expect(keyOf(TypeOid.bpchar, TEXT, 'ab   ')).toBe(keyOf(TypeOid.bpchar, BINARY, 'ab'));
    expect(keyOf(TypeOid.bpchar, TEXT, ' ab')).not.toBe(keyOf(TypeOid.bpchar, TEXT, 'ab'));
  });

  it('interval: equal spans (1 day = 24 hours, 1 mon = 30 days) are one key', () => {
    const t = (s: string): string => keyOf(INTERVAL, TEXT, s);
    expect(t('1 day')).toBe(t('24:00:00'));
    expect(t('1 mon')).toBe(t('30 days'));
    expect(t('1 year 2 mons 3 days 04:05:06.5')).toBe(t('1 year 2 mons 3 days 04:05:06.500000'));
    expect(t('-1 years -2 mons +3 days -04:05:06')).toBe(t('-14 mons +2 days +19:54:54'));
    expect(t('00:00:00')).toBe(t('0 days'));
    expect(t('1 day')).not.toBe(t('23:59:59.999999'));
    expect(t('infinity')).toBe('infinity');
    const b = (us: bigint, d: number, m: number): string => keyOf(INTERVAL, BINARY, interval(us, d, m));
    expect(b(0n, 1, 0)).toBe(b(86_400_000_000n, 0, 0));
    expect(b(0n, 0, 1)).toBe(b(0n, 30, 0));
    expect(b(0n, 0, 1)).toBe(t('30 days'));
    expect(b(1n, 0, 0)).not.toBe(b(0n, 0, 0));
  });

  it('refuses interval text in another IntervalStyle, and arrays/ranges/records of such types (0A000)', () => {
    expect(() => intervalTextKey(Buffer.from('P1Y2M'), 'UNION')).toThrow(/IntervalStyle postgres/);
    expect(() => intervalTextKey(Buffer.from('@ 1 day'), 'UNION')).toThrow(/IntervalStyle/);
    expect(() => equalityKeyFor({ typeOid: 1231, format: TEXT }, 'UNION')).toThrow(
      /UNION across shards cannot compare values of type numeric\[\]/,
    );
    expect(() => equalityKeyFor({ typeOid: 2249, format: BINARY }, 'DISTINCT')).toThrow(/record/);
    let code: string | null = null;
    try {
      equalityKeyFor({ typeOid: 3906, format: TEXT }, 'UNION');
    } catch (err) {
      code = (err as PgError).code;
    }
    expect(code).toBe('0A000');
  });

  it('other types keep their bytes (no key function)', () => {
    for (const typeOid of [TypeOid.int8, TypeOid.text, TypeOid.timestamptz, TypeOid.uuid, 16400]) {
      expect(equalityKeyFor({ typeOid, format: TEXT }, 'UNION')).toBeNull();
    }
  });
});

describe('groupKey', () => {
  it('joins the canonical values of the listed columns without collisions', () => {
    const types = [
      { typeOid: TypeOid.numeric, format: TEXT },
      { typeOid: TypeOid.text, format: TEXT },
    ];
    const keys = groupKeysFor(types, [0, 1], 'UNION');
    const row = (a: string | null, b: string | null): (Buffer | null)[] => [
      a === null ? null : Buffer.from(a),
      b === null ? null : Buffer.from(b),
    ];
    expect(groupKey(row('1.0', 'x'), [0, 1], keys)).toBe(groupKey(row('1.00', 'x'), [0, 1], keys));
    expect(groupKey(row('1', 'x;'), [0, 1], keys)).not.toBe(groupKey(row('1;', 'x'), [0, 1], keys));
    expect(groupKey(row(null, 'N;'), [0, 1], keys)).not.toBe(groupKey(row('N', null), [0, 1], keys));
    expect(groupKey(row(null, null), [0, 1], keys)).toBe(groupKey(row(null, null), [0, 1], keys));
  });
});

// Unit tests for partial-aggregates: ExactSum (numeric's addition without an object per value) against the reference
// addDecimalTexts, including its fast path for short integers, big integers, scales and NaN / ±Infinity; and the
// encoders of merged values in a column's type and format.
import { describe, expect, it } from 'vitest';
import {
  encodeDecimal,
  encodeFloat,
  encodeInteger,
  ExactSum,
  partialAccumulator,
} from '../../../src/execute/partial-aggregates.js';
import { addDecimalTexts, numericBinaryToText, TypeOid } from '../../../src/execute/value-compare.js';

function exactSum(texts: readonly string[]): string {
  const sum = new ExactSum();
  for (const t of texts) sum.add(t);
  return sum.text();
}

/** A deterministic pseudo-random generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ExactSum', () => {
  it('adds as addDecimalTexts does: integers of every size, fractions of several scales, signs', () => {
    const random = rng(12);
    for (let round = 0; round < 200; round++) {
      const texts: string[] = [];
      for (let i = 0; i < 1 + Math.floor(random() * 40); i++) {
        const digits = 1 + Math.floor(random() * 25);
        let integer = String(Math.floor(random() * 9) + 1);
        while (integer.length < digits) integer += String(Math.floor(random() * 10));
        const scale = random() < 0.5 ? 0 : Math.floor(random() * 6);
        const fraction = Array.from({ length: scale }, () => String(Math.floor(random() * 10))).join('');
        texts.push(`${random() < 0.4 ? '-' : ''}${integer}${scale > 0 ? `.${fraction}` : ''}`);
      }
      expect(exactSum(texts), texts.join(' + ')).toBe(addDecimalTexts(texts));
    }
  });

  it('keeps short integers exact past 2^53 in total', () => {
    const texts = Array.from({ length: 5000 }, () => '999999999999999');
    expect(exactSum(texts)).toBe(addDecimalTexts(texts));
    expect(exactSum(['9223372036854775807', '9223372036854775807', '-1'])).toBe('18446744073709551613');
  });

  it('NaN absorbs, Infinity + -Infinity is NaN, an infinity absorbs finite values; scale of the largest input', () => {
    expect(exactSum(['1', 'NaN', 'Infinity'])).toBe('NaN');
    expect(exactSum(['Infinity', '-Infinity'])).toBe('NaN');
    expect(exactSum(['-Infinity', '5.5'])).toBe('-Infinity');
    expect(exactSum(['1.5', '2', '0.250'])).toBe('3.750');
    expect(exactSum(['-0.5', '0.5'])).toBe('0.0');
    const big = new ExactSum();
    big.addBigInt(-9223372036854775808n);
    big.add('0.01');
    expect(big.text()).toBe('-9223372036854775807.99');
    expect(big.count).toBe(2);
  });
});

describe('sums of partials in binary', () => {
  it('int8 and numeric keep their format', () => {
    const int8 = (n: bigint): Buffer => {
      const out = Buffer.alloc(8);
      out.writeBigInt64BE(n);
      return out;
    };
    const acc = partialAccumulator('sum', { typeOid: TypeOid.int8, format: 1 });
    acc.add(int8(2n ** 62n));
    acc.add(null);
    acc.add(int8(-5n));
    expect(acc.result()?.readBigInt64BE(0)).toBe(2n ** 62n - 5n);
  });
});

describe('encoders', () => {
  it('write a count in integer, numeric, float and text columns, text or binary', () => {
    expect(encodeInteger(42n, { typeOid: TypeOid.int8, format: 0 }).toString()).toBe('42');
    expect(encodeInteger(42n, { typeOid: TypeOid.int2, format: 1 }).readInt16BE(0)).toBe(42);
    expect(numericBinaryToText(encodeInteger(42n, { typeOid: TypeOid.numeric, format: 1 }))).toBe('42');
    expect(encodeInteger(42n, { typeOid: TypeOid.float8, format: 1 }).readDoubleBE(0)).toBe(42);
    expect(encodeInteger(42n, { typeOid: TypeOid.text, format: 1 }).toString()).toBe('42');
    expect(() => encodeInteger(1n, { typeOid: TypeOid.date, format: 0 })).toThrow(/type OID 1082/);
  });

  it('write decimals and floats as PostgreSQL prints them', () => {
    expect(encodeDecimal('12.50', { typeOid: TypeOid.numeric, format: 0 }).toString()).toBe('12.50');
    expect(encodeDecimal('7', { typeOid: TypeOid.int8, format: 1 }).readBigInt64BE(0)).toBe(7n);
    expect(encodeFloat(0.1 + 0.2, { typeOid: TypeOid.float8, format: 0 }).toString()).toBe(
      '0.30000000000000004',
    );
    expect(encodeFloat(Math.fround(1.1), { typeOid: TypeOid.float4, format: 0 }).toString()).toBe('1.1');
  });
});

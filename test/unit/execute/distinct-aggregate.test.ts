// Unit tests for distinct-aggregate: count/sum/avg(DISTINCT x) from the values the shards return — PostgreSQL's
// equality (numeric scales, float zeros), result types and formats, float sums in ascending order with PostgreSQL's
// overflow errors, and the bound on what is held. Expected values are PostgreSQL 15's answers.
import { describe, expect, it } from 'vitest';
import { distinctAccumulatorFactory, type DistinctFn } from '../../../src/execute/distinct-aggregate.js';
import { HeldBytes } from '../../../src/execute/held-bytes.js';
import {
  numericBinaryToText,
  numericTextToBinary,
  TypeOid,
  type ColumnType,
} from '../../../src/execute/value-compare.js';

const text = (typeOid: number): ColumnType => ({ typeOid, format: 0 });
const binary = (typeOid: number): ColumnType => ({ typeOid, format: 1 });

function run(
  fn: DistinctFn,
  valueType: ColumnType,
  resultType: ColumnType,
  values: (string | Buffer | null)[],
  held = new HeldBytes(),
): Buffer | null {
  const acc = distinctAccumulatorFactory(fn, valueType, resultType, held)();
  for (const v of values) acc.add(typeof v === 'string' ? Buffer.from(v, 'latin1') : v);
  return acc.result();
}

const str = (v: Buffer | null): string | null => (v === null ? null : v.toString('latin1'));
const f8 = (x: number): Buffer => {
  const out = Buffer.alloc(8);
  out.writeDoubleBE(x);
  return out;
};

describe('count(DISTINCT x)', () => {
  it('counts values once by PostgreSQL equality, ignoring NULLs', () => {
    const numeric = ['1.0', '1.00', '1', null, '-0.0', '0', '2.50', '2.5'];
    expect(str(run('count', text(TypeOid.numeric), text(TypeOid.int8), numeric))).toBe('3');
    const floats = ['-0', '0', 'NaN', 'NaN', '1.5'];
    expect(str(run('count', text(TypeOid.float8), text(TypeOid.int8), floats))).toBe('3');
    const words = ['a', 'A', 'a', null, ''];
    expect(str(run('count', text(TypeOid.text), text(TypeOid.int8), words))).toBe('3');
  });

  it('binary values (numeric 1.0 = 1.00) and a binary int8 result; 0 for no values', () => {
    const values = [numericTextToBinary('1.0'), numericTextToBinary('1.00'), numericTextToBinary('7')];
    const out = run('count', binary(TypeOid.numeric), binary(TypeOid.int8), values);
    expect(out?.readBigInt64BE(0)).toBe(2n);
    expect(str(run('count', text(TypeOid.int4), text(TypeOid.int8), [null]))).toBe('0');
  });

  it('writes the count in the type a cast gave it', () => {
    expect(run('count', text(TypeOid.text), binary(TypeOid.int4), ['a', 'b'])?.readInt32BE(0)).toBe(2);
    expect(str(run('count', text(TypeOid.text), text(TypeOid.text), ['a', 'b']))).toBe('2');
    expect(() => run('count', text(TypeOid.text), binary(TypeOid.bool), ['a'])).toThrow(/type OID 16/);
  });
});

describe('sum(DISTINCT x) and avg(DISTINCT x)', () => {
  it('integers: sum in int8 (int4 input) or numeric (int8 input), avg as numeric_div', () => {
    const ints = ['1', '2', '2', '3', null];
    expect(str(run('sum', text(TypeOid.int4), text(TypeOid.int8), ints))).toBe('6');
    expect(str(run('avg', text(TypeOid.int4), text(TypeOid.numeric), ints))).toBe('2.0000000000000000');
    const big = ['9223372036854775807', '9223372036854775807', '9223372036854775806'];
    expect(str(run('sum', text(TypeOid.int8), text(TypeOid.numeric), big))).toBe('18446744073709551613');
    const binaryInts = [1, 2, 2].map((n) => {
      const out = Buffer.alloc(4);
      out.writeInt32BE(n);
      return out;
    });
    expect(run('sum', binary(TypeOid.int4), binary(TypeOid.int8), binaryInts)?.readBigInt64BE(0)).toBe(3n);
  });

  it('numeric: exact, equal values counted once; binary result', () => {
    const values = ['1.5', '1.50', '2.25', '-0.75'];
    expect(str(run('sum', text(TypeOid.numeric), text(TypeOid.numeric), values))).toBe('3.00');
    const avg = run('avg', text(TypeOid.numeric), binary(TypeOid.numeric), values);
    expect(numericBinaryToText(avg as Buffer)).toBe('1.00000000000000000000');
    expect(run('sum', text(TypeOid.numeric), text(TypeOid.numeric), [null])).toBeNull();
    expect(str(run('sum', text(TypeOid.numeric), text(TypeOid.numeric), ['NaN', '1']))).toBe('NaN');
  });

  it('floats: added in ascending order, whatever order the shards sent them in', () => {
    // SELECT sum(DISTINCT x), avg(DISTINCT x) FROM (VALUES (0.3::float8), (0.1), (0.2), (0.2)) v(x)
    const values = ['0.3', '0.1', '0.2', '0.2'];
    expect(str(run('sum', text(TypeOid.float8), text(TypeOid.float8), values))).toBe('0.6000000000000001');
    expect(str(run('avg', text(TypeOid.float8), text(TypeOid.float8), values))).toBe('0.20000000000000004');
    const out = run('sum', binary(TypeOid.float8), binary(TypeOid.float8), [f8(0.3), f8(0.1), f8(0.2)]);
    expect(out?.readDoubleBE(0)).toBe(0.6000000000000001);
  });

  it('float4: values are float4s (their text is the shortest that reads back), summed in float4, averaged in float8', () => {
    // SELECT sum(DISTINCT x::float4), avg(DISTINCT x::float4) FROM (VALUES (0.3), (0.1), (0.7)) v(x)
    const values = ['0.3', '0.1', '0.7'];
    expect(str(run('sum', text(TypeOid.float4), text(TypeOid.float4), values))).toBe('1.1');
    expect(str(run('avg', text(TypeOid.float4), text(TypeOid.float8), values))).toBe('0.36666666716337204');
  });

  it('fails as PostgreSQL does when a float sum overflows (22003)', () => {
    const sum = (): Buffer | null =>
      run('sum', text(TypeOid.float4), text(TypeOid.float4), ['1e+38', '3e+38']);
    expect(sum).toThrow(/value out of range: overflow/);
    // float8_accum's sum of squares overflows first.
    const avg = (): Buffer | null =>
      run('avg', text(TypeOid.float8), text(TypeOid.float8), ['1e+300', '-1e+300']);
    expect(avg).toThrow(/value out of range: overflow/);
    expect(str(run('sum', text(TypeOid.float8), text(TypeOid.float8), ['Infinity', '1e+308']))).toBe(
      'Infinity',
    );
  });

  it('refuses sum/avg of types it cannot add (0A000), and arrays it cannot compare', () => {
    expect(() => run('sum', text(1186), text(1186), [])).toThrow(/type OID 1186 is not supported/);
    expect(() => run('count', text(1231), text(TypeOid.int8), [])).toThrow(/numeric\[\]/);
  });
});

describe('the bound on held values', () => {
  it('fails with 54000 once the values of the statement pass it, naming the bound', () => {
    const held = new HeldBytes(1024 * 1024);
    const acc = distinctAccumulatorFactory('count', text(TypeOid.int8), text(TypeOid.int8), held)();
    let error: unknown = null;
    try {
      for (let i = 0; i < 100_000; i++) acc.add(Buffer.from(String(i)));
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: '54000' });
    expect(String((error as Error).message)).toMatch(/count\(DISTINCT …\) across shards .* exceed 1 MiB/);
    expect(held.used).toBeGreaterThan(1024 * 1024);
  });

  it('counts each distinct value once, not each time a shard sends it', () => {
    const held = new HeldBytes();
    const acc = distinctAccumulatorFactory('sum', text(TypeOid.int4), text(TypeOid.int8), held)();
    acc.add(Buffer.from('12345'));
    const once = held.used;
    acc.add(Buffer.from('12345'));
    expect(held.used).toBe(once);
  });
});

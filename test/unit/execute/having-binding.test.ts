// HAVING bound to a request (execute/having-binding.ts): literals typed as PostgreSQL types them, Bind parameters with
// their format and the cast's or the Parse's type, numeric constants cast to integers rounded half away from zero, and
// the refusals (a parameter the Bind lacks, a binary parameter of unknown type). No sockets.
import { describe, expect, it } from 'vitest';
import { bindHaving, roundToInteger } from '../../../src/execute/having-binding.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { HavingCondition, HavingOperand } from '../../../src/router/plan.js';

const column = (position: number): HavingOperand => ({ kind: 'column', position });
const literal = (value: string | null, isString = false, castType: string | null = null): HavingOperand => ({
  kind: 'literal',
  value,
  isString,
  castType,
});
const param = (index: number, castType: string | null = null): HavingOperand => ({
  kind: 'param',
  index,
  castType,
});
const compare = (left: HavingOperand, right: HavingOperand): HavingCondition => ({
  kind: 'compare',
  op: '>',
  left,
  right,
});

/** The bound right-hand side of `column 1 > operand`. */
function boundRight(
  operand: HavingOperand,
  params: { values: (Buffer | null)[]; formats: (0 | 1)[] } | null = null,
  paramTypes: number[] = [],
) {
  const filter = bindHaving(compare(column(1), operand), params, paramTypes);
  if (filter.kind !== 'compare') throw new Error('expected a comparison');
  return filter.right;
}

function errorOf(fn: () => unknown): PgError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

describe('roundToInteger', () => {
  it('rounds half away from zero, as numeric → int does', () => {
    expect(roundToInteger('12.5')).toBe('13');
    expect(roundToInteger('-12.5')).toBe('-13');
    expect(roundToInteger('12.49')).toBe('12');
    expect(roundToInteger('-0.4')).toBe('0');
    expect(roundToInteger('.5')).toBe('1');
    expect(roundToInteger(' 7 ')).toBe('7');
    expect(roundToInteger('+3.')).toBe('3');
  });

  it('keeps what is not a plain decimal as it is (the server judges it)', () => {
    expect(roundToInteger('1e3')).toBe('1e3');
    expect(roundToInteger('abc')).toBe('abc');
    expect(roundToInteger('.')).toBe('.');
    expect(roundToInteger('123456789012345678901.5')).toBe('123456789012345678902');
  });
});

describe('bindHaving', () => {
  it('numbers columns from 0 and keeps the condition tree', () => {
    const condition: HavingCondition = {
      kind: 'or',
      args: [{ kind: 'not', arg: compare(column(2), literal('1')) }, compare(column(3), literal('x', true))],
    };
    const bound = bindHaving(condition, null, []);
    expect(bound).toMatchObject({
      kind: 'or',
      args: [
        { kind: 'not', arg: { kind: 'compare', op: '>', left: { kind: 'column', column: 1 } } },
        { kind: 'compare', left: { kind: 'column', column: 2 } },
      ],
    });
  });

  it('types a number literal as numeric, a quoted one by the other side (0), a cast by its type', () => {
    expect(boundRight(literal('10'))).toEqual({
      kind: 'constant',
      value: Buffer.from('10'),
      format: 0,
      typeOid: TypeOid.numeric,
    });
    expect(boundRight(literal('10', true))).toMatchObject({ typeOid: 0 });
    expect(boundRight(literal('2.5', false, 'float8'))).toMatchObject({ typeOid: TypeOid.float8 });
    expect(boundRight(literal(null))).toEqual({ kind: 'constant', value: null, format: 0, typeOid: 0 });
  });

  it('rounds a text constant cast to an integer type', () => {
    expect(boundRight(literal('2.5', false, 'int4'))).toMatchObject({
      value: Buffer.from('3'),
      typeOid: TypeOid.int4,
    });
    const text = { values: [Buffer.from('-7.5')], formats: [0 as const] };
    expect(boundRight(param(1, 'int8'), text)).toMatchObject({
      value: Buffer.from('-8'),
      typeOid: TypeOid.int8,
    });
    // numeric keeps its fraction
    expect(boundRight(literal('2.5', false, 'numeric'))).toMatchObject({ value: Buffer.from('2.5') });
  });

  it("binds a parameter with its format and the cast's, else the Parse's, type", () => {
    const value = Buffer.from([0, 0, 0, 5]);
    const params = { values: [value], formats: [1 as const] };
    expect(boundRight(param(1), params, [TypeOid.int4])).toEqual({
      kind: 'constant',
      value,
      format: 1,
      typeOid: TypeOid.int4,
    });
    expect(boundRight(param(1, 'int8'), params, [TypeOid.int4])).toMatchObject({ typeOid: TypeOid.int8 });
    // a binary value is not rounded
    expect(boundRight(param(1, 'int4'), params)).toMatchObject({ value, format: 1 });
    const text = { values: [Buffer.from('x')], formats: [0 as const] };
    expect(boundRight(param(1), text)).toMatchObject({ format: 0, typeOid: 0 });
  });

  it('refuses a parameter the Bind lacks (08P01) and a binary one of unknown type (0A000)', () => {
    expect(errorOf(() => boundRight(param(2), { values: [null], formats: [0] })).code).toBe('08P01');
    expect(errorOf(() => boundRight(param(1), null)).code).toBe('08P01');
    const binary = { values: [Buffer.from([0, 0, 0, 1])], formats: [1 as const] };
    expect(errorOf(() => boundRight(param(1), binary)).code).toBe('0A000');
  });
});

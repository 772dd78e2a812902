// A fan-out SELECT's HAVING bound to the request: the plan's condition (router/plan.ts) with each operand made a
// merged-row column or a constant the merger can compare — literals as written, Bind parameters with their format and
// the type a cast or the Parse declares, and a numeric constant cast to an integer type rounded as PostgreSQL rounds
// numeric → int (half away from zero). Pure: no I/O.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import type { BindParams } from '../router/bind-params.js';
import type { HavingCondition, HavingOperand } from '../router/plan.js';
import type { HavingFilter, HavingValue } from './having-filter.js';
import { Format, TypeOid } from './value-compare.js';

/** Type OIDs of the casts a HAVING constant may carry (select-shape.ts lists the names). */
const CAST_TYPE_OIDS: Readonly<Record<string, number>> = {
  int2: TypeOid.int2,
  int4: TypeOid.int4,
  int8: TypeOid.int8,
  numeric: TypeOid.numeric,
  float4: TypeOid.float4,
  float8: TypeOid.float8,
  text: TypeOid.text,
  varchar: TypeOid.varchar,
  bpchar: TypeOid.bpchar,
};

const INTEGER_OIDS: ReadonlySet<number> = new Set([TypeOid.int2, TypeOid.int4, TypeOid.int8]);

/**
 * The plan's HAVING with its parameters bound: what the merger evaluates on each merged group. `paramTypes`: the
 * Parse's declared parameter types (0 or absent: PostgreSQL infers the type from the other side, as the merger does).
 * Throws PgError: 08P01 for a parameter the Bind lacks, 0A000 for a binary parameter of unknown type.
 */
export function bindHaving(
  condition: HavingCondition,
  params: BindParams | null,
  paramTypes: readonly number[],
): HavingFilter {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return { kind: condition.kind, args: condition.args.map((c) => bindHaving(c, params, paramTypes)) };
    case 'not':
      return { kind: 'not', arg: bindHaving(condition.arg, params, paramTypes) };
    case 'compare':
      return {
        kind: 'compare',
        op: condition.op,
        left: havingValue(condition.left, params, paramTypes),
        right: havingValue(condition.right, params, paramTypes),
      };
  }
}

function havingValue(
  operand: HavingOperand,
  params: BindParams | null,
  paramTypes: readonly number[],
): HavingValue {
  if (operand.kind === 'column') return { kind: 'column', column: operand.position - 1 };
  const castOid = operand.castType !== null ? (CAST_TYPE_OIDS[operand.castType] ?? 0) : 0;
  let value: Buffer | null;
  let format: number = Format.Text;
  let typeOid = castOid;
  if (operand.kind === 'literal') {
    value = operand.value === null ? null : Buffer.from(operand.value, 'utf8');
    // A number literal is integer or numeric (both compare as exact decimals); a quoted one takes the other side's type.
    if (typeOid === 0 && !operand.isString && value !== null) typeOid = TypeOid.numeric;
  } else {
    const i = operand.index - 1;
    if (params === null || i < 0 || i >= params.values.length)
      throw PgError.malformedMessage(`HAVING refers to parameter $${operand.index}, which the Bind lacks`);
    value = params.values[i] ?? null;
    format = params.formats[i] ?? Format.Text;
    // A cast decides the parameter's type; else the type the Parse declared (0: PostgreSQL infers it from the
    // other side of the comparison, as the merger does).
    if (typeOid === 0) typeOid = paramTypes[i] ?? 0;
    if (format === Format.Binary && typeOid === 0)
      throw PgError.featureNotSupported(
        'a binary HAVING parameter across shards needs a declared type (in Parse or a cast)',
      );
  }
  // A numeric constant cast to an integer type is rounded, half away from zero (numeric → int).
  if (value !== null && format === Format.Text && INTEGER_OIDS.has(castOid)) {
    value = Buffer.from(roundToInteger(value.toString('latin1')), 'latin1');
  }
  return { kind: 'constant', value, format, typeOid };
}

/** A decimal's text rounded half away from zero: `12.5` → `13`, `-12.5` → `-13`, `7` → `7` (else as given). */
export function roundToInteger(text: string): string {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) return text;
  let integer = BigInt(m[2] === '' ? '0' : m[2]);
  if ((m[3] ?? '').charCodeAt(0) >= 0x35) integer += 1n; // first fraction digit ≥ 5
  return integer === 0n ? '0' : `${m[1] === '-' ? '-' : ''}${integer}`;
}

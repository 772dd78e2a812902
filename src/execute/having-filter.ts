// HAVING applied by the proxy to merged groups: comparisons (=, <>, <, <=, >, >=) between merged columns and
// constants or Bind parameters, joined by AND / OR / NOT with SQL's three-valued logic (a group passes only when the
// predicate is true; a comparison with NULL is unknown). Values compare in the domain PostgreSQL's operator choice
// gives them: exact decimals for integer and numeric types; double precision when either side is float4/float8
// (a float4 value is widened exactly, as float48 operators do); bytes for text types — the "C" collation, the same
// assumption as the ORDER BY merge — and bpchar ignoring trailing spaces. A constant of unknown type (a quoted literal or an
// untyped parameter) takes the other side's type, as PostgreSQL resolves it. Other types: 0A000.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import type { CompareOperator } from '../router/plan.js';
import {
  compareBpchar,
  compareBytes,
  compareDecimalText,
  compareFloats,
  Format,
  numericBinaryToText,
  TypeOid,
  type ColumnType,
} from './value-compare.js';

export type HavingValue =
  /** A column of the merged row (0-based, shard layout). */
  | { readonly kind: 'column'; readonly column: number }
  /**
   * A constant in its wire form: a literal as text, a parameter as bound. `typeOid` 0: unknown (it takes the other
   * side's type).
   */
  | {
      readonly kind: 'constant';
      readonly value: Buffer | null;
      readonly format: number;
      readonly typeOid: number;
    };

export type HavingFilter =
  | { readonly kind: 'and' | 'or'; readonly args: readonly HavingFilter[] }
  | { readonly kind: 'not'; readonly arg: HavingFilter }
  | {
      readonly kind: 'compare';
      readonly op: CompareOperator;
      readonly left: HavingValue;
      readonly right: HavingValue;
    };

/** Does the merged row pass HAVING? `types`: the merged row's column types. */
export function havingPasses(
  filter: HavingFilter,
  row: readonly (Buffer | null)[],
  types: readonly ColumnType[],
  textCollation: string | null = null,
): boolean {
  return evaluate(filter, row, types, textCollation) === true;
}

/** true, false, or null (unknown). */
function evaluate(
  filter: HavingFilter,
  row: readonly (Buffer | null)[],
  types: readonly ColumnType[],
  textCollation: string | null,
): boolean | null {
  switch (filter.kind) {
    case 'and': {
      let result: boolean | null = true;
      for (const arg of filter.args) {
        const v = evaluate(arg, row, types, textCollation);
        if (v === false) return false;
        if (v === null) result = null;
      }
      return result;
    }
    case 'or': {
      let result: boolean | null = false;
      for (const arg of filter.args) {
        const v = evaluate(arg, row, types, textCollation);
        if (v === true) return true;
        if (v === null) result = null;
      }
      return result;
    }
    case 'not': {
      const v = evaluate(filter.arg, row, types, textCollation);
      return v === null ? null : !v;
    }
    case 'compare': {
      const isOrdering = filter.op !== '=' && filter.op !== '<>';
      const c = compareValues(filter.left, filter.right, row, types, isOrdering ? textCollation : null);
      if (c === null) return null;
      switch (filter.op) {
        case '=':
          return c === 0;
        case '<>':
          return c !== 0;
        case '<':
          return c < 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '>=':
          return c >= 0;
      }
    }
  }
}

type Domain = 'decimal' | 'float' | 'text' | 'bpchar';

function domainOf(oid: number): Domain | null {
  switch (oid) {
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.int8:
    case TypeOid.numeric:
      return 'decimal';
    case TypeOid.float4:
    case TypeOid.float8:
      return 'float';
    case TypeOid.text:
    case TypeOid.varchar:
    case TypeOid.name:
      return 'text';
    case TypeOid.bpchar:
      return 'bpchar';
    default:
      return null;
  }
}

interface Typed {
  value: Buffer | null;
  type: ColumnType;
  isConstant: boolean;
}

function typed(v: HavingValue, row: readonly (Buffer | null)[], types: readonly ColumnType[]): Typed {
  if (v.kind === 'constant')
    return { value: v.value, type: { typeOid: v.typeOid, format: v.format }, isConstant: true };
  const type = types[v.column];
  if (type === undefined || v.column >= row.length)
    throw PgError.internal(`HAVING column ${v.column + 1} is beyond the merged row`);
  return { value: row[v.column], type, isConstant: false };
}

/** Compare two HAVING operands: negative, zero, positive, or null when either is NULL. */
export function compareValues(
  leftValue: HavingValue,
  rightValue: HavingValue,
  row: readonly (Buffer | null)[],
  types: readonly ColumnType[],
  /** Set for <, <=, >, >= where text does not sort by bytes: text cannot be ordered here (equality still can). */
  textCollation: string | null = null,
): number | null {
  const left = typed(leftValue, row, types);
  const right = typed(rightValue, row, types);
  // An untyped constant is read as the other side's type.
  if (left.type.typeOid === 0) left.type = { typeOid: right.type.typeOid, format: left.type.format };
  if (right.type.typeOid === 0) right.type = { typeOid: left.type.typeOid, format: right.type.format };
  const a = domainOf(left.type.typeOid);
  const b = domainOf(right.type.typeOid);
  if (a === null || b === null) {
    const oid = a === null ? left.type.typeOid : right.type.typeOid;
    throw PgError.featureNotSupported(
      `HAVING across shards cannot compare values of type OID ${oid}`,
      'Compare integer, numeric, floating-point or text values, or add the sharding key.',
    );
  }
  const isNumber = (d: Domain): boolean => d === 'decimal' || d === 'float';
  if (isNumber(a) !== isNumber(b)) {
    throw PgError.featureNotSupported(
      `HAVING across shards cannot compare type OID ${left.type.typeOid} with type OID ${right.type.typeOid}`,
    );
  }
  if (textCollation !== null && !isNumber(a)) {
    throw PgError.featureNotSupported(
      `HAVING across shards cannot order text in the database collation "${textCollation}"`,
      'Compare text with = or <>, add COLLATE "C" to the comparison, or route the query to one shard.',
    );
  }
  if (left.value === null || right.value === null) return null;
  if (a === 'float' || b === 'float') return compareFloats(asDouble(left), asDouble(right));
  if (a === 'decimal') {
    return compareDecimalText(
      Buffer.from(asDecimal(left), 'latin1'),
      Buffer.from(asDecimal(right), 'latin1'),
    );
  }
  if (a === 'bpchar' && b === 'bpchar') return compareBpchar(left.value, right.value);
  return compareBytes(left.value, right.value);
}

/** A number-typed value as a double (float4 widened exactly, as float48 comparisons do). */
function asDouble(v: Typed): number {
  const value = v.value as Buffer;
  const oid = v.type.typeOid;
  if (v.type.format === Format.Binary) {
    switch (oid) {
      case TypeOid.float4:
        return value.readFloatBE(0);
      case TypeOid.float8:
        return value.readDoubleBE(0);
      default:
        return Number(asDecimal(v));
    }
  }
  const text = value.toString('latin1').trim();
  const x = oid === TypeOid.float4 || oid === TypeOid.float8 ? parseFloatText(text) : Number(asDecimal(v));
  return oid === TypeOid.float4 ? Math.fround(x) : x;
}

function parseFloatText(text: string): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === 'infinity' || lower === '+infinity' || lower === 'inf' || lower === '+inf') return Infinity;
  if (lower === '-infinity' || lower === '-inf') return -Infinity;
  const x = Number(text);
  if (text === '' || Number.isNaN(x)) throw invalidNumber(text);
  return x;
}

/** An integer/numeric value as plain decimal text (`-?digits(.digits)?`, NaN, ±Infinity). */
function asDecimal(v: Typed): string {
  const value = v.value as Buffer;
  if (v.type.format === Format.Binary) {
    switch (v.type.typeOid) {
      case TypeOid.int2:
        return String(value.readInt16BE(0));
      case TypeOid.int4:
        return String(value.readInt32BE(0));
      case TypeOid.int8:
        return value.readBigInt64BE(0).toString();
      case TypeOid.numeric:
        return numericBinaryToText(value);
      default:
        throw PgError.internal(`binary value of type OID ${v.type.typeOid} where a number was expected`);
    }
  }
  const text = value.toString('latin1');
  // Values the shards print are plain already; constants may be written `1e3`, ` 5`, `.5`.
  return v.isConstant ? plainDecimal(text) : text;
}

/** A numeric constant's text as numeric_out would print its value (exponent expanded); throws when it is not one. */
export function plainDecimal(text: string): string {
  const t = text.trim();
  const lower = t.toLowerCase();
  if (lower === 'nan') return 'NaN';
  if (lower === 'infinity' || lower === '+infinity' || lower === 'inf' || lower === '+inf') return 'Infinity';
  if (lower === '-infinity' || lower === '-inf') return '-Infinity';
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(t);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) throw invalidNumber(text);
  const digits = m[2] + (m[3] ?? '');
  const exponent = Number(m[4] ?? '0');
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 10_000) throw invalidNumber(text);
  const point = m[2].length + exponent; // digits before the decimal point
  let integer: string;
  let fraction: string;
  if (point <= 0) {
    integer = '0';
    fraction = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    integer = digits + '0'.repeat(point - digits.length);
    fraction = '';
  } else {
    integer = digits.slice(0, point);
    fraction = digits.slice(point);
  }
  integer = integer.replace(/^0+(?=\d)/, '');
  const isZero = /^[0]*$/.test(integer + fraction);
  return `${m[1] === '-' && !isZero ? '-' : ''}${integer}${fraction !== '' ? `.${fraction}` : ''}`;
}

function invalidNumber(text: string): PgError {
  return PgError.featureNotSupported(`HAVING across shards: "${text}" is not a number`);
}

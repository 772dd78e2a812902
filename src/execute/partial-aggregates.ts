// Partial aggregate values folded one at a time: the count/sum/min/max of a group's per-shard results (or of the
// partial groups one shard returns when it also groups by DISTINCT values), and `combineValues`, the same fold over a
// list. Integer and numeric sums add exactly (as decimals, binary numeric included); float sums add as doubles in
// arrival order (float4 rounded once, at the end) and print as PostgreSQL does with the default extra_float_digits
// (shortest round-trip), not honouring extra_float_digits <= 0. NULL inputs are ignored; all NULL → NULL. Sums of
// other types (money, interval, …) are refused with 0A000 rather than guessed. Also the encoders that write a
// computed integer, decimal or float in a result column's type and format.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import {
  comparatorFor,
  Format,
  formatDecimal,
  formatFloat,
  numericBinaryToText,
  numericTextToBinary,
  TypeOid,
  type AggregateFn,
  type ColumnType,
} from './value-compare.js';

/** One column of one merged group, folded value by value. */
export interface Accumulator {
  /** Fold one value. It may be a view into a reused buffer: what the accumulator keeps, it copies. */
  add(value: Buffer | null): void;
  /** The merged value (NULL when every input was NULL). */
  result(): Buffer | null;
}

/** The accumulator of count/sum/min/max partials of one column of this type. */
export function partialAccumulator(fn: AggregateFn, type: ColumnType): Accumulator {
  if (fn === 'min' || fn === 'max') return new BestValue(fn, type);
  const isBinary = type.format === Format.Binary;
  switch (type.typeOid) {
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.int8:
      return isBinary ? new BinaryIntegerSum(type.typeOid) : new DecimalSum(false);
    case TypeOid.numeric:
      return new DecimalSum(isBinary);
    case TypeOid.float4:
    case TypeOid.float8:
      return new FloatSum(type.typeOid === TypeOid.float4, isBinary);
    default:
      return new Refused(fn, type);
  }
}

/** count/sum/min/max of one column over the shards' partial results (NULLs ignored; all NULL → NULL). */
export function combineValues(
  fn: AggregateFn,
  type: ColumnType,
  values: readonly (Buffer | null)[],
): Buffer | null {
  const acc = partialAccumulator(fn, type);
  for (const v of values) acc.add(v);
  return acc.result();
}

/** min/max: keeps (a copy of) the best value by the type's order. */
class BestValue implements Accumulator {
  private best: Buffer | null = null;
  private readonly compare;

  constructor(
    private readonly fn: 'min' | 'max',
    type: ColumnType,
  ) {
    this.compare = comparatorFor(type);
  }

  add(value: Buffer | null): void {
    if (value === null) return;
    if (this.best !== null) {
      const c = this.compare(value, this.best);
      if (this.fn === 'min' ? c >= 0 : c <= 0) return;
    }
    this.best = Buffer.from(value);
  }

  result(): Buffer | null {
    return this.best;
  }
}

/** Integer (text) and numeric (text or binary) sums: exact, with numeric's result scale (the largest input scale). */
class DecimalSum implements Accumulator {
  private readonly sum = new ExactSum();

  constructor(private readonly isBinaryNumeric: boolean) {}

  add(value: Buffer | null): void {
    if (value === null) return;
    this.sum.add(this.isBinaryNumeric ? numericBinaryToText(value) : value.toString('latin1'));
  }

  result(): Buffer | null {
    if (this.sum.count === 0) return null;
    const text = this.sum.text();
    return this.isBinaryNumeric ? numericTextToBinary(text) : Buffer.from(text, 'latin1');
  }
}

const MAX_FAST_DIGITS = 15; // |n| < 10^15: exact as a double, and 2^52 + 10^15 < 2^53
const FAST_FLUSH = 2 ** 52;

/**
 * An exact running sum of decimal texts (int*out / numeric_out, NaN and ±Infinity included) with numeric's result
 * scale (the largest input scale) — what addDecimalTexts computes, without an object per value: short integers add
 * as doubles (exact below 2^53) and join the big sum when it grows.
 */
export class ExactSum {
  /** How many values were added. */
  count = 0;
  /** The sum × 10^scale, apart from `fast`. */
  private units = 0n;
  private scale = 0;
  /** A running sum of integers of at most MAX_FAST_DIGITS digits. */
  private fast = 0;
  private special: 'NaN' | 'Infinity' | '-Infinity' | null = null;

  add(text: string): void {
    this.count++;
    const first = text.charCodeAt(0);
    if (first === 0x4e /* N */ || first === 0x49 /* I */ || (first === 0x2d && text.charCodeAt(1) === 0x49)) {
      this.addSpecial(text as 'NaN' | 'Infinity' | '-Infinity');
      return;
    }
    const dot = text.indexOf('.');
    if (dot < 0) {
      if (text.length <= MAX_FAST_DIGITS) {
        this.fast += Number(text);
        if (this.fast > FAST_FLUSH || this.fast < -FAST_FLUSH) this.flush();
      } else {
        this.units += BigInt(text) * 10n ** BigInt(this.scale);
      }
      return;
    }
    const fractionDigits = text.length - dot - 1;
    const digits = BigInt(text.slice(0, dot) + text.slice(dot + 1));
    if (fractionDigits > this.scale) {
      this.units *= 10n ** BigInt(fractionDigits - this.scale);
      this.scale = fractionDigits;
    }
    this.units += digits * 10n ** BigInt(this.scale - fractionDigits);
  }

  addBigInt(n: bigint): void {
    this.count++;
    this.units += n * 10n ** BigInt(this.scale);
  }

  /** The sum as numeric_out prints it. */
  text(): string {
    if (this.special !== null) return this.special;
    this.flush();
    return formatDecimal({ value: this.units, scale: this.scale });
  }

  private flush(): void {
    if (this.fast === 0) return;
    this.units += BigInt(this.fast) * 10n ** BigInt(this.scale);
    this.fast = 0;
  }

  /** NaN absorbs; Infinity + -Infinity is NaN; an infinity absorbs finite values. */
  private addSpecial(text: 'NaN' | 'Infinity' | '-Infinity'): void {
    if (this.special === null || text === 'NaN') this.special = text;
    else if (this.special !== text) this.special = 'NaN';
  }
}

/** int2/int4/int8 in binary format: the sum written back in the column's width. */
class BinaryIntegerSum implements Accumulator {
  private sum: bigint | null = null;

  constructor(private readonly oid: number) {}

  add(value: Buffer | null): void {
    if (value === null) return;
    this.sum = (this.sum ?? 0n) + readBinaryInteger(value, this.oid);
  }

  result(): Buffer | null {
    return this.sum === null ? null : writeBinaryInteger(this.sum, this.oid);
  }
}

/** float4/float8: added as doubles in arrival order; float4 is rounded to single precision once, at the end. */
class FloatSum implements Accumulator {
  private sum: number | null = null;

  constructor(
    private readonly isFloat4: boolean,
    private readonly isBinary: boolean,
  ) {}

  add(value: Buffer | null): void {
    if (value === null) return;
    const x = this.isBinary
      ? this.isFloat4
        ? value.readFloatBE(0)
        : value.readDoubleBE(0)
      : Number(value.toString('latin1'));
    this.sum = (this.sum ?? 0) + x;
  }

  result(): Buffer | null {
    if (this.sum === null) return null;
    return encodeFloat(this.isFloat4 ? Math.fround(this.sum) : this.sum, {
      typeOid: this.isFloat4 ? TypeOid.float4 : TypeOid.float8,
      format: this.isBinary ? Format.Binary : Format.Text,
    });
  }
}

/** A sum of a type the proxy cannot add exactly: fails at its first non-NULL value (all NULL is still NULL). */
class Refused implements Accumulator {
  constructor(
    private readonly fn: AggregateFn,
    private readonly type: ColumnType,
  ) {}

  add(value: Buffer | null): void {
    if (value === null) return;
    throw PgError.featureNotSupported(
      `${this.fn}() of type OID ${this.type.typeOid} (${this.type.format === Format.Binary ? 'binary' : 'text'} format) cannot be combined across shards yet`,
      'Run the aggregate on one shard, or aggregate an integer, numeric or float expression.',
    );
  }

  result(): Buffer | null {
    return null;
  }
}

// ---- reading and writing results in a column's type ----

/** An int2/int4/int8 binary value. */
export function readBinaryInteger(value: Buffer, oid: number): bigint {
  if (oid === TypeOid.int8) return value.readBigInt64BE(0);
  return BigInt(oid === TypeOid.int4 ? value.readInt32BE(0) : value.readInt16BE(0));
}

function writeBinaryInteger(n: bigint, oid: number): Buffer {
  const out = Buffer.alloc(oid === TypeOid.int8 ? 8 : oid === TypeOid.int4 ? 4 : 2);
  if (oid === TypeOid.int8) out.writeBigInt64BE(n);
  else if (oid === TypeOid.int4) out.writeInt32BE(Number(n));
  else out.writeInt16BE(Number(n));
  return out;
}

/** Integer and text-like types: a count (or any integer) can be written in their text output. */
const INTEGER_TEXT_OIDS: ReadonlySet<number> = new Set([
  TypeOid.int2,
  TypeOid.int4,
  TypeOid.int8,
  TypeOid.numeric,
  TypeOid.float4,
  TypeOid.float8,
  TypeOid.text,
  TypeOid.varchar,
]);

/** An integer (a count) as a value of `type`: the integer types, numeric, floats, and text. Else 0A000. */
export function encodeInteger(n: bigint, type: ColumnType): Buffer {
  if (type.format === Format.Text) {
    if (!INTEGER_TEXT_OIDS.has(type.typeOid)) throw cannotWrite('a count', type);
    return Buffer.from(n.toString(), 'latin1');
  }
  switch (type.typeOid) {
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.int8:
      return writeBinaryInteger(n, type.typeOid);
    case TypeOid.numeric:
      return numericTextToBinary(n.toString());
    case TypeOid.float4:
    case TypeOid.float8:
      return encodeFloat(Number(n), type);
    case TypeOid.text:
    case TypeOid.varchar:
      return Buffer.from(n.toString(), 'latin1');
    default:
      throw cannotWrite('a count', type);
  }
}

/** A decimal (numeric_out text) as a value of an integer or numeric `type`. Else 0A000. */
export function encodeDecimal(text: string, type: ColumnType): Buffer {
  if (type.typeOid === TypeOid.numeric)
    return type.format === Format.Binary ? numericTextToBinary(text) : Buffer.from(text, 'latin1');
  if (type.typeOid === TypeOid.int2 || type.typeOid === TypeOid.int4 || type.typeOid === TypeOid.int8) {
    return type.format === Format.Binary
      ? writeBinaryInteger(BigInt(text), type.typeOid)
      : Buffer.from(text, 'latin1');
  }
  throw cannotWrite('a sum', type);
}

/** A double as a float4/float8 value (text as float4out/float8out print it). Else 0A000. */
export function encodeFloat(x: number, type: ColumnType): Buffer {
  const isFloat4 = type.typeOid === TypeOid.float4;
  if (!isFloat4 && type.typeOid !== TypeOid.float8) throw cannotWrite('a float', type);
  if (type.format === Format.Text) return Buffer.from(formatFloat(x, isFloat4), 'latin1');
  const out = Buffer.alloc(isFloat4 ? 4 : 8);
  if (isFloat4) out.writeFloatBE(x);
  else out.writeDoubleBE(x);
  return out;
}

function cannotWrite(what: string, type: ColumnType): PgError {
  return PgError.featureNotSupported(
    `${what} merged across shards cannot be written as type OID ${type.typeOid} (${type.format === Format.Binary ? 'binary' : 'text'} format)`,
    'Drop the cast around the aggregate, or route the query to one shard.',
  );
}

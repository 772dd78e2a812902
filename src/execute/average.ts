// avg() across shards: each shard returns sum(x) and count(x); the merge adds both and divides the way PostgreSQL's
// avg final functions do. Integer and numeric input: numeric_div(sum, count) — a numeric whose scale select_div_scale
// picks (at least NUMERIC_MIN_SIG_DIGITS = 16 significant digits, never less than the sum's scale), rounded half away
// from zero; NaN and ±Infinity sums pass through. float8 input: sum / count in double precision, printed as float8out
// does (real input arrives as float8: the shards sum `x * 1`, see rewrite.ts). No rows (count 0): NULL.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { ExactSum } from './partial-aggregates.js';
import {
  Format,
  formatFloat,
  numericBinaryToText,
  numericTextToBinary,
  TypeOid,
  type ColumnType,
} from './value-compare.js';

/** numeric.c: NUMERIC_MIN_SIG_DIGITS, DEC_DIGITS (decimal digits per base-10000 digit), NUMERIC_MAX_DISPLAY_SCALE. */
const NUMERIC_MIN_SIG_DIGITS = 16;
const DEC_DIGITS = 4;
const NUMERIC_MAX_DISPLAY_SCALE = 1000;

/** The type OID avg() returns, from the type sum() returned on the shards; 0A000 for inputs it cannot reproduce. */
export function averageType(sumTypeOid: number): number {
  switch (sumTypeOid) {
    case TypeOid.int8: // sum(int2 | int4)
    case TypeOid.numeric: // sum(int8 | numeric)
      return TypeOid.numeric;
    case TypeOid.float8:
      return TypeOid.float8;
    case TypeOid.float4: // not from the router's rewrite (real * 1 is float8); a sum(real) lost precision already
      throw PgError.featureNotSupported(
        'avg() of real across shards needs its sum in double precision',
        'Use avg(x::double precision), or add the sharding key so the query runs on one shard.',
      );
    default:
      throw PgError.featureNotSupported(
        `avg() across shards of a value whose sum has type OID ${sumTypeOid} is not supported`,
        'Average integer, numeric or double precision values, or add the sharding key.',
      );
  }
}

/** The merged avg of one group: the shards' sum(x) and count(x) values (NULL for no rows anywhere). */
export function mergeAverage(
  sums: readonly (Buffer | null)[],
  sumType: ColumnType,
  counts: readonly (Buffer | null)[],
  countType: ColumnType,
): Buffer | null {
  const acc = new AverageAccumulator(sumType, countType);
  for (let i = 0; i < sums.length; i++) acc.add(sums[i], counts[i] ?? null);
  return acc.result();
}

/** avg(x) of one group, folded from the partial rows' sum(x) and count(x). */
export class AverageAccumulator {
  private count = 0n;
  /** Integer and numeric input: the exact sum; float input: the double sum, in arrival order. */
  private readonly decimalSum = new ExactSum();
  private floatSum: number | null = null;
  private readonly isFloat: boolean;

  constructor(
    private readonly sumType: ColumnType,
    private readonly countType: ColumnType,
  ) {
    this.isFloat = averageType(sumType.typeOid) === TypeOid.float8; // refuses sums it cannot divide
  }

  add(sum: Buffer | null, count: Buffer | null): void {
    if (count !== null) {
      this.count +=
        this.countType.format === Format.Binary ? count.readBigInt64BE(0) : BigInt(count.toString('latin1'));
    }
    if (sum === null) return;
    const isBinary = this.sumType.format === Format.Binary;
    if (this.isFloat) {
      this.floatSum =
        (this.floatSum ?? 0) + (isBinary ? sum.readDoubleBE(0) : Number(sum.toString('latin1')));
      return;
    }
    if (!isBinary) this.decimalSum.add(sum.toString('latin1'));
    else if (this.sumType.typeOid === TypeOid.int8) this.decimalSum.addBigInt(sum.readBigInt64BE(0));
    else this.decimalSum.add(numericBinaryToText(sum));
  }

  result(): Buffer | null {
    if (this.count === 0n) return null;
    const isBinary = this.sumType.format === Format.Binary;
    if (this.isFloat) {
      if (this.floatSum === null) return null;
      const avg = this.floatSum / Number(this.count);
      if (!isBinary) return Buffer.from(formatFloat(avg, false), 'latin1');
      const out = Buffer.alloc(8);
      out.writeDoubleBE(avg);
      return out;
    }
    if (this.decimalSum.count === 0) return null;
    const avg = divideNumeric(this.decimalSum.text(), this.count);
    return isBinary ? numericTextToBinary(avg) : Buffer.from(avg, 'latin1');
  }
}

/** numeric_div(dividend, divisor) for a decimal text (numeric_out) and a positive integer, as numeric_out prints it. */
export function divideNumeric(dividend: string, divisor: bigint): string {
  if (divisor <= 0n) throw new RangeError(`divisor must be positive, got ${divisor}`);
  if (dividend === 'NaN' || dividend === 'Infinity' || dividend === '-Infinity') return dividend;
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(dividend);
  if (m === null) throw PgError.internal(`a shard returned "${dividend}" where a sum was expected`);
  const fraction = m[3] ?? '';
  const scale = fraction.length;
  const magnitude = BigInt(m[2] + fraction);
  const rscale = selectDivScale(magnitude, scale, divisor);
  // |dividend| / divisor with rscale fraction digits, rounded half away from zero.
  const numerator = magnitude * 10n ** BigInt(rscale - scale);
  const quotient = (2n * numerator + divisor) / (2n * divisor);
  const digits = quotient.toString().padStart(rscale + 1, '0');
  const integer = digits.slice(0, digits.length - rscale);
  const text = rscale > 0 ? `${integer}.${digits.slice(digits.length - rscale)}` : integer;
  return m[1] === '-' && quotient !== 0n ? `-${text}` : text;
}

/**
 * select_div_scale: enough fraction digits for NUMERIC_MIN_SIG_DIGITS significant digits of the quotient, estimated
 * from the base-10000 weights and first digits of both operands; at least either operand's display scale.
 */
function selectDivScale(magnitude: bigint, scale: number, divisor: bigint): number {
  const [weight1, first1] = weightAndFirstDigit(magnitude, scale);
  const [weight2, first2] = weightAndFirstDigit(divisor, 0);
  let qweight = weight1 - weight2;
  if (first1 <= first2) qweight--;
  const rscale = Math.max(NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS, scale, 0);
  return Math.min(rscale, NUMERIC_MAX_DISPLAY_SCALE);
}

/** The weight (power of 10000) and value of the first non-zero base-10000 digit of `magnitude / 10^scale`; 0, 0 for 0. */
function weightAndFirstDigit(magnitude: bigint, scale: number): [number, number] {
  if (magnitude === 0n) return [0, 0];
  const digits = magnitude.toString();
  const exponent = digits.length - 1 - scale; // of the leading decimal digit
  const weight = Math.floor(exponent / DEC_DIGITS);
  const width = exponent - weight * DEC_DIGITS + 1; // decimal digits of the first base-10000 digit
  return [weight, Number(digits.slice(0, width).padEnd(width, '0'))];
}

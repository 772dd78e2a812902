// count/sum/avg(DISTINCT x) of one group from the distinct x values the shards return (each shard groups by x, so
// it sends each of its values once per group; the same value may come from several shards). Values are kept once
// by PostgreSQL's equality (group-key.ts: numeric 1.0 = 1.00, float -0 = 0, bpchar without trailing spaces…), their
// bytes counted against the statement's bound (held-bytes.ts); NULLs are ignored, as DISTINCT aggregates do.
//
// The results are PostgreSQL's:
// - count: the number of distinct values, written in the column's type (int8, or what a cast made of it).
// - sum: int2/int4 → int8, int8/numeric → numeric, exact (numeric's scale: the largest scale among the values kept;
//   where equal values were written with different scales, PostgreSQL keeps an arbitrary one of them, so the scale
//   of such a sum is not defined there either); float4/float8 added in ascending order (the order PostgreSQL's
//   DISTINCT sort feeds them to float4pl/float8pl), float4 rounded at each step, "value out of range: overflow"
//   (22003) when a finite sum overflows, as there.
// - avg: integer and numeric input → numeric_div(sum, count) (average.ts); float4/float8 input → float8 from
//   float8_accum's running sums in ascending order (its overflow error included).
// Other types (money, interval…) are refused with 0A000 for sum and avg.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { divideNumeric } from './average.js';
import { equalityKeyFor, type ValueKey } from './group-key.js';
import { HELD_VALUE_OVERHEAD_BYTES, type HeldBytes } from './held-bytes.js';
import {
  encodeDecimal,
  encodeFloat,
  encodeInteger,
  ExactSum,
  readBinaryInteger,
  type Accumulator,
} from './partial-aggregates.js';
import { compareFloats, Format, numericBinaryToText, TypeOid, type ColumnType } from './value-compare.js';

export type DistinctFn = 'count' | 'sum' | 'avg';

const INTEGER_OIDS: ReadonlySet<number> = new Set([TypeOid.int2, TypeOid.int4, TypeOid.int8]);

/**
 * Checks that `fn(DISTINCT x)` can be merged for a value column of this type and a result column of that type
 * (0A000 otherwise); returns the accumulator factory for its groups.
 */
export function distinctAccumulatorFactory(
  fn: DistinctFn,
  valueType: ColumnType,
  resultType: ColumnType,
  held: HeldBytes,
): () => Accumulator {
  const label = `${fn}(DISTINCT …)`;
  const key = equalityKeyFor(valueType, label);
  if (fn !== 'count') {
    const oid = valueType.typeOid;
    if (
      !INTEGER_OIDS.has(oid) &&
      oid !== TypeOid.numeric &&
      oid !== TypeOid.float4 &&
      oid !== TypeOid.float8
    ) {
      throw PgError.featureNotSupported(
        `${label} across shards of type OID ${oid} is not supported`,
        'Aggregate integer, numeric or float values, or route the query to one shard.',
      );
    }
  }
  return () => new DistinctAccumulator(fn, label, key, valueType, resultType, held);
}

class DistinctAccumulator implements Accumulator {
  /** Canonical key → the first value seen with it (count only needs the keys). */
  private readonly values = new Map<string, Buffer | null>();

  constructor(
    private readonly fn: DistinctFn,
    private readonly label: string,
    private readonly key: ValueKey | null,
    private readonly valueType: ColumnType,
    private readonly resultType: ColumnType,
    private readonly held: HeldBytes,
  ) {}

  add(value: Buffer | null): void {
    if (value === null) return;
    const k = this.key === null ? value.toString('latin1') : this.key(value);
    if (this.values.has(k)) return;
    const kept = this.fn === 'count' ? null : Buffer.from(value);
    this.held.charge(k.length + (kept?.length ?? 0) + HELD_VALUE_OVERHEAD_BYTES, this.label);
    this.values.set(k, kept);
  }

  result(): Buffer | null {
    if (this.fn === 'count') return encodeInteger(BigInt(this.values.size), this.resultType);
    if (this.values.size === 0) return null;
    const kept = [...this.values.values()] as Buffer[];
    const oid = this.valueType.typeOid;
    if (oid === TypeOid.float4 || oid === TypeOid.float8) return this.floatResult(kept);
    const sum = new ExactSum();
    for (const v of kept) sum.add(this.decimalText(v));
    const text = sum.text();
    if (this.fn === 'sum') return encodeDecimal(text, this.resultType);
    return encodeDecimal(divideNumeric(text, BigInt(kept.length)), this.resultType);
  }

  private decimalText(v: Buffer): string {
    if (this.valueType.format === Format.Text) return v.toString('latin1');
    return this.valueType.typeOid === TypeOid.numeric
      ? numericBinaryToText(v)
      : readBinaryInteger(v, this.valueType.typeOid).toString();
  }

  /** The values in ascending order (PostgreSQL's DISTINCT sort), folded as float4pl / float8pl / float8_accum do. */
  private floatResult(kept: readonly Buffer[]): Buffer {
    const isFloat4 = this.valueType.typeOid === TypeOid.float4;
    const isBinary = this.valueType.format === Format.Binary;
    // float4 text is the shortest decimal that reads back as the float4: round it to that float4 again.
    const xs = kept.map((v) =>
      isBinary
        ? isFloat4
          ? v.readFloatBE(0)
          : v.readDoubleBE(0)
        : isFloat4
          ? Math.fround(Number(v.toString('latin1')))
          : Number(v.toString('latin1')),
    );
    xs.sort(compareFloats);
    if (this.fn === 'sum') {
      let sum = xs[0];
      for (let i = 1; i < xs.length; i++) {
        const next = isFloat4 ? Math.fround(sum + xs[i]) : sum + xs[i];
        if (isInfinite(next) && !isInfinite(sum) && !isInfinite(xs[i])) throw overflow();
        sum = next;
      }
      return encodeFloat(sum, this.resultType);
    }
    // float8_accum (Youngs-Cramer): N, Sx and Sxx; Sxx only matters here for its overflow check.
    let n = 0;
    let sx = 0;
    let sxx = 0;
    for (const x of xs) {
      const previousN = n;
      const previousSx = sx;
      n += 1;
      sx += x;
      if (previousN > 0) {
        const tmp = x * n - sx;
        sxx += (tmp * tmp) / (n * previousN);
        if (isInfinite(sx) || isInfinite(sxx)) {
          if (!isInfinite(previousSx) && !isInfinite(x)) throw overflow();
          sxx = NaN;
        }
      } else if (Number.isNaN(x) || isInfinite(x)) {
        sxx = NaN;
      }
    }
    return encodeFloat(sx / n, this.resultType);
  }
}

function isInfinite(x: number): boolean {
  return x === Infinity || x === -Infinity;
}

/** float_overflow_error(). */
function overflow(): PgError {
  return new PgError('ERROR', SqlState.NumericValueOutOfRange, 'value out of range: overflow');
}

// Group keys for rows merged across shards (GROUP BY, DISTINCT, UNION): two rows fall into one group when
// PostgreSQL's equality operator says their values are equal, which for some types is not equality of the bytes the
// shards send. Each such value is keyed by a canonical form:
// - numeric: its value, whatever its display scale (1.0 = 1.00 = 1; text, or binary numeric_send);
// - float4/float8: -0 = 0 (text "-0", binary sign bit), every NaN alike;
// - bpchar: trailing spaces do not count (char(3) 'a  ' = char(5) 'a    ');
// - interval: 1 day = 24 hours and 1 mon = 30 days (interval_cmp_value); binary format, or text in the default
//   IntervalStyle (postgres) — any other style is refused with 0A000.
// Every other type compares by bytes: exact for integers, text in deterministic collations, dates and timestamps
// (one session's output), uuid, bool, bytea, jsonb without numbers written with different scales, enums…; not for
// user types with their own equality (citext) or nondeterministic collations. Arrays, ranges and records of the
// types above are refused with 0A000 rather than grouped by bytes.
import { PgError } from '../errors/pg-error.js';
import { Format, numericBinaryToText, TypeOid, type ColumnType } from './value-compare.js';

/** A value's canonical form: equal strings ⇔ PostgreSQL's equality holds. */
export type ValueKey = (value: Buffer) => string;

const INTERVAL_OID = 1186;

/** Types whose elements or members compare with one of the non-byte equalities above: refused. */
const REFUSED_OIDS: Readonly<Record<number, string>> = {
  1231: 'numeric[]',
  1021: 'real[]',
  1022: 'double precision[]',
  1014: 'character[]',
  1187: 'interval[]',
  3906: 'numrange',
  3907: 'numrange[]',
  4532: 'nummultirange',
  6151: 'nummultirange[]',
  2249: 'record',
  2287: 'record[]',
};

/** The key of one column's values, or null when their bytes are already canonical. Throws 0A000 for refused types. */
export function equalityKeyFor(type: ColumnType, purpose: string): ValueKey | null {
  const isBinary = type.format === Format.Binary;
  switch (type.typeOid) {
    case TypeOid.numeric:
      return isBinary ? numericBinaryKey : numericTextKey;
    case TypeOid.float4:
      return isBinary ? float4BinaryKey : floatTextKey;
    case TypeOid.float8:
      return isBinary ? float8BinaryKey : floatTextKey;
    case TypeOid.bpchar:
      return bpcharKey;
    case INTERVAL_OID:
      return isBinary ? intervalBinaryKey : (v) => intervalTextKey(v, purpose);
  }
  const refused = REFUSED_OIDS[type.typeOid];
  if (refused !== undefined) {
    throw PgError.featureNotSupported(
      `${purpose} across shards cannot compare values of type ${refused} as PostgreSQL does`,
      'Compare a column of a scalar type (numeric, text, …) instead, or route the query to one shard.',
    );
  }
  return null;
}

/**
 * The group key of a row: the listed columns' values, canonical where the type needs it (`keys[i]` for
 * `columns[i]`, null for bytes), length-prefixed so that different splits never collide.
 */
export function groupKey(
  values: readonly (Buffer | null)[],
  columns: readonly number[],
  keys: readonly (ValueKey | null)[],
): string {
  let key = '';
  for (let i = 0; i < columns.length; i++) {
    const v = values[columns[i]];
    if (v === null || v === undefined) {
      key += 'N;';
      continue;
    }
    const fn = keys[i];
    const text = fn === null || fn === undefined ? v.toString('latin1') : fn(v);
    key += `${text.length}:${text};`;
  }
  return key;
}

/** The keys of the listed columns for these column types (see `equalityKeyFor`). */
export function groupKeysFor(
  types: readonly ColumnType[],
  columns: readonly number[],
  purpose: string,
): (ValueKey | null)[] {
  return columns.map((c) => {
    const type = types[c];
    if (type === undefined)
      throw PgError.internal(`column ${c + 1} is beyond the ${types.length} described columns`);
    return equalityKeyFor(type, purpose);
  });
}

// ---- numeric ----

/** numeric_out text without trailing fraction zeros (and without its dot when none is left); zero is "0". */
export function canonicalDecimal(text: string): string {
  const dot = text.indexOf('.');
  if (dot < 0) return text === '-0' ? '0' : text;
  let end = text.length;
  while (end > dot + 1 && text.charCodeAt(end - 1) === 0x30) end--;
  if (end === dot + 1) end = dot;
  const out = text.slice(0, end);
  return /^-?0*$/.test(out) ? '0' : out;
}

const numericTextKey: ValueKey = (v) => canonicalDecimal(v.toString('latin1'));
const numericBinaryKey: ValueKey = (v) => canonicalDecimal(numericBinaryToText(v));

// ---- float ----

const floatTextKey: ValueKey = (v) => {
  const text = v.toString('latin1');
  return text === '-0' ? '0' : text;
};

function floatKey(x: number, v: Buffer): string {
  if (x === 0) return '0';
  if (Number.isNaN(x)) return 'NaN';
  return v.toString('latin1');
}

const float4BinaryKey: ValueKey = (v) => floatKey(v.readFloatBE(0), v);
const float8BinaryKey: ValueKey = (v) => floatKey(v.readDoubleBE(0), v);

// ---- bpchar ----

const bpcharKey: ValueKey = (v) => {
  let end = v.length;
  while (end > 0 && v[end - 1] === 0x20) end--;
  return v.toString('latin1', 0, end);
};

// ---- interval ----

const USECS_PER_DAY = 86_400_000_000n;
const DAYS_PER_MONTH = 30n;

/** interval_cmp_value: one span in microseconds, a month counting 30 days and a day 24 hours. */
function intervalSpan(months: bigint, days: bigint, microseconds: bigint): string {
  return ((months * DAYS_PER_MONTH + days) * USECS_PER_DAY + microseconds).toString();
}

/** interval_send: int64 microseconds, int32 days, int32 months. */
const intervalBinaryKey: ValueKey = (v) =>
  intervalSpan(BigInt(v.readInt32BE(12)), BigInt(v.readInt32BE(8)), v.readBigInt64BE(0));

const INTERVAL_TIME = /^([+-]?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/;
const INTERVAL_COUNT = /^[+-]?\d+$/;
const MONTHS_PER_UNIT: Readonly<Record<string, bigint>> = { year: 12n, years: 12n, mon: 1n, mons: 1n };

/** interval_out in IntervalStyle postgres (`1 year 2 mons -3 days +04:05:06.5`, `infinity`). */
export function intervalTextKey(v: Buffer, purpose: string): string {
  const text = v.toString('latin1');
  if (text === 'infinity' || text === '-infinity') return text;
  let months = 0n;
  let days = 0n;
  let microseconds = 0n;
  const tokens = text.split(' ');
  for (let i = 0; i < tokens.length; i++) {
    const time = INTERVAL_TIME.exec(tokens[i]);
    if (time !== null) {
      const [, sign, h, m, s, fraction = ''] = time;
      const us =
        ((BigInt(h) * 60n + BigInt(m)) * 60n + BigInt(s)) * 1_000_000n + BigInt(fraction.padEnd(6, '0'));
      microseconds += sign === '-' ? -us : us;
      continue;
    }
    const unit = tokens[i + 1];
    if (INTERVAL_COUNT.test(tokens[i]) && unit !== undefined) {
      const n = BigInt(tokens[i]);
      const perUnit = MONTHS_PER_UNIT[unit];
      if (perUnit !== undefined) months += n * perUnit;
      else if (unit === 'day' || unit === 'days') days += n;
      else throw intervalStyleUnsupported(purpose, text);
      i++;
      continue;
    }
    throw intervalStyleUnsupported(purpose, text);
  }
  return intervalSpan(months, days, microseconds);
}

function intervalStyleUnsupported(purpose: string, text: string): PgError {
  return PgError.featureNotSupported(
    `${purpose} across shards compares interval values only in IntervalStyle postgres (got "${text}")`,
    'SET IntervalStyle = postgres, or ask for binary results.',
  );
}

// Column values of DataRows, ordered and combined the way PostgreSQL would, chosen per (type OID, format code).
//
// Ordering (`comparatorFor`):
// - text format: int2/int4/int8/oid/numeric compare exactly on their digits (sign, integer-part length, digits;
//   never through a double, so int8 beyond 2^53 and numerics of any scale are exact; NaN > +Infinity > numbers >
//   -Infinity as in PostgreSQL); float4/float8 parse as doubles (PostgreSQL prints them round-trippable, NaN is
//   greatest); date/timestamp/timestamptz are parsed from DateStyle ISO output (BC years, years past 9999 and
//   ±infinity handled; timestamptz compares the instant, so offsets that differ across a DST change are right) — the
//   session's DateStyle is assumed to be ISO, other styles fall back to byte order; bool, uuid, bytea (hex output),
//   time and "char" compare by bytes, which is their order.
// - binary format: int2/int4/int8/oid, float4/float8, numeric, date, time, timestamp(tz) by value; bool, uuid, bytea
//   and text types by bytes.
// - text/varchar/name (either format) compare by bytes: that is the "C" collation. PostgreSQL sorts them with the
//   column's collation, so shards sorting with another collation (en_US…) produce runs that are not in byte order:
//   the merger refuses (0A000) text ORDER BY / min / max in databases whose collation is not byte order
//   (MergeSpec.textCollation, probed at start-up), unless the sort says `COLLATE "C"`. bpchar ignores trailing
//   spaces, as bpcharcmp does.
// - every other type (user types such as enums — whose order is not their label's —, intervals, json, arrays, …)
//   compares by raw bytes: deterministic but not PostgreSQL's order. `hasTypeOrder` tells which types are exact.
//
// Also the pieces combining needs (partial-aggregates.ts): exact decimal addition (int*out / numeric_out text, binary
// numeric through its text), the numeric binary codec, and float output as float4out/float8out print it.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';

/** Built-in type OIDs (pg_type.oid) the merger knows. */
export const TypeOid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
} as const;

/** Objects created by users (types included) get OIDs from here on; they differ from one database to the next. */
export const FIRST_USER_OID = 16384;

/** Format codes of RowDescription / Bind. */
export const Format = { Text: 0, Binary: 1 } as const;

/** One output column's type and format, as RowDescription gives them. */
export interface ColumnType {
  typeOid: number;
  format: number;
}

/** Orders two non-NULL values of one column: negative, zero or positive. */
export type ValueComparator = (a: Buffer, b: Buffer) => number;

export type AggregateFn = 'count' | 'sum' | 'min' | 'max';

const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const SPACE = 0x20;
const COLON = 0x3a;

export const compareBytes: ValueComparator = (a, b) => Buffer.compare(a, b);

/** Which exact comparator a column gets; anything not listed compares by raw bytes. */
export function comparatorFor(type: ColumnType): ValueComparator {
  return type.format === Format.Binary ? binaryComparator(type.typeOid) : textComparator(type.typeOid);
}

const COLLATED = new Set<number>([TypeOid.text, TypeOid.varchar, TypeOid.bpchar, TypeOid.name]);

/** Text types: PostgreSQL orders them by the column's collation (the merge compares bytes: the "C" collation). */
export function isCollatedType(type: ColumnType): boolean {
  return COLLATED.has(type.typeOid);
}

/** True when `comparatorFor` orders this type as PostgreSQL does (text types: in the "C" collation). */
export function hasTypeOrder(type: ColumnType): boolean {
  return comparatorFor(type) !== compareBytes || BYTE_ORDERED.has(type.typeOid);
}

const BYTE_ORDERED = new Set<number>([
  TypeOid.bool,
  TypeOid.bytea,
  TypeOid.char,
  TypeOid.name,
  TypeOid.text,
  TypeOid.varchar,
  TypeOid.uuid,
  TypeOid.time,
]);

function textComparator(oid: number): ValueComparator {
  switch (oid) {
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.int8:
    case TypeOid.oid:
    case TypeOid.numeric:
      return compareDecimalText;
    case TypeOid.float4:
    case TypeOid.float8:
      return compareFloatText;
    case TypeOid.bpchar:
      return compareBpchar;
    case TypeOid.date:
    case TypeOid.timestamp:
    case TypeOid.timestamptz:
      return compareDateTimeText;
    case TypeOid.time: // HH:MM:SS[.ffffff], fixed-width fields, trailing zeros never printed: byte order is time order
    default:
      return compareBytes;
  }
}

const compareInt16: ValueComparator = (a, b) => a.readInt16BE(0) - b.readInt16BE(0);
const compareInt32: ValueComparator = (a, b) => compareNumbers(a.readInt32BE(0), b.readInt32BE(0));
const compareUint32: ValueComparator = (a, b) => compareNumbers(a.readUInt32BE(0), b.readUInt32BE(0));
const compareFloat4: ValueComparator = (a, b) => compareFloats(a.readFloatBE(0), b.readFloatBE(0));
const compareFloat8: ValueComparator = (a, b) => compareFloats(a.readDoubleBE(0), b.readDoubleBE(0));
const compareNumericBinary: ValueComparator = (a, b) =>
  compareDecimalText(
    Buffer.from(numericBinaryToText(a), 'latin1'),
    Buffer.from(numericBinaryToText(b), 'latin1'),
  );

function binaryComparator(oid: number): ValueComparator {
  switch (oid) {
    case TypeOid.int2:
      return compareInt16;
    case TypeOid.int4:
    case TypeOid.date: // int32 days since 2000-01-01; ±infinity are INT32_MAX/MIN
      return compareInt32;
    case TypeOid.oid:
      return compareUint32;
    case TypeOid.int8:
    case TypeOid.time: // int64 microseconds
    case TypeOid.timestamp:
    case TypeOid.timestamptz: // int64 microseconds since 2000-01-01 UTC; ±infinity are INT64_MAX/MIN
      return compareInt64;
    case TypeOid.float4:
      return compareFloat4;
    case TypeOid.float8:
      return compareFloat8;
    case TypeOid.numeric:
      return compareNumericBinary;
    case TypeOid.bpchar:
      return compareBpchar;
    default:
      return compareBytes;
  }
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Signed 64-bit big-endian, without a BigInt: high words signed, low words unsigned. */
function compareInt64(a: Buffer, b: Buffer): number {
  return (
    compareNumbers(a.readInt32BE(0), b.readInt32BE(0)) || compareNumbers(a.readUInt32BE(4), b.readUInt32BE(4))
  );
}

/** float8_cmp_internal: NaN equals NaN and sorts above everything else; -0 equals 0. */
export function compareFloats(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (Number.isNaN(b)) return -1;
  return compareNumbers(a, b);
}

function compareFloatText(a: Buffer, b: Buffer): number {
  return compareFloats(Number(a.toString('latin1')), Number(b.toString('latin1')));
}

/** bpcharcmp: trailing spaces do not count. */
export function compareBpchar(a: Buffer, b: Buffer): number {
  let endA = a.length;
  while (endA > 0 && a[endA - 1] === SPACE) endA--;
  let endB = b.length;
  while (endB > 0 && b[endB - 1] === SPACE) endB--;
  return a.compare(b, 0, endB, 0, endA);
}

// ---- exact decimal text (int2/int4/int8/oid/numeric output) ----

const DEC_NEG_INF = 0;
const DEC_FINITE = 1;
const DEC_POS_INF = 2;
const DEC_NAN = 3;

function decimalKind(v: Buffer): number {
  if (v.length === 0) return DEC_FINITE;
  const c = v[0];
  if (c === 0x4e) return DEC_NAN; // 'N'aN
  if (c === 0x49) return DEC_POS_INF; // 'I'nfinity
  if (c === MINUS && v.length > 1 && v[1] === 0x49) return DEC_NEG_INF;
  return DEC_FINITE;
}

/**
 * Orders decimal numbers as printed by int*out/numeric_out (`-?digits(.digits)?`, NaN, ±Infinity) without parsing
 * them into numbers: sign, then integer-part length (leading zeros skipped), then digits; missing fraction digits
 * count as zeros. NaN sorts above +Infinity, as numeric_cmp does.
 */
export function compareDecimalText(a: Buffer, b: Buffer): number {
  const kindA = decimalKind(a);
  const kindB = decimalKind(b);
  if (kindA !== kindB) return kindA < kindB ? -1 : 1;
  if (kindA !== DEC_FINITE) return 0;
  const isNegA = a[0] === MINUS;
  const isNegB = b[0] === MINUS;
  if (isNegA !== isNegB) {
    const startA = isNegA || a[0] === PLUS ? 1 : 0;
    const startB = isNegB || b[0] === PLUS ? 1 : 0;
    // -0 = 0; otherwise the negative one is smaller.
    if (isZero(a, startA) && isZero(b, startB)) return 0;
    return isNegA ? -1 : 1;
  }
  const magnitude = compareMagnitudes(a, isNegA || a[0] === PLUS ? 1 : 0, b, isNegB || b[0] === PLUS ? 1 : 0);
  return isNegA ? -magnitude : magnitude;
}

function isZero(v: Buffer, start: number): boolean {
  for (let i = start; i < v.length; i++) if (v[i] !== ZERO && v[i] !== DOT) return false;
  return true;
}

function compareMagnitudes(a: Buffer, startA: number, b: Buffer, startB: number): number {
  let dotA = a.indexOf(DOT, startA);
  if (dotA < 0) dotA = a.length;
  let dotB = b.indexOf(DOT, startB);
  if (dotB < 0) dotB = b.length;
  let i = startA;
  while (i < dotA && a[i] === ZERO) i++;
  let j = startB;
  while (j < dotB && b[j] === ZERO) j++;
  const lengthA = dotA - i;
  const lengthB = dotB - j;
  if (lengthA !== lengthB) return lengthA < lengthB ? -1 : 1;
  for (; i < dotA; i++, j++) if (a[i] !== b[j]) return a[i] < b[j] ? -1 : 1;
  for (i = dotA + 1, j = dotB + 1; i < a.length || j < b.length; i++, j++) {
    const digitA = i < a.length ? a[i] : ZERO;
    const digitB = j < b.length ? b[j] : ZERO;
    if (digitA !== digitB) return digitA < digitB ? -1 : 1;
  }
  return 0;
}

// ---- date / timestamp / timestamptz in DateStyle ISO ----

/** Scratch for parsed instants: [seconds since 1970-01-01 UTC (±Infinity for ±infinity), microseconds]. */
const instantA = new Float64Array(2);
const instantB = new Float64Array(2);

function compareDateTimeText(a: Buffer, b: Buffer): number {
  if (!parseIsoDateTime(a, instantA) || !parseIsoDateTime(b, instantB)) return compareBytes(a, b);
  return compareNumbers(instantA[0], instantB[0]) || compareNumbers(instantA[1], instantB[1]);
}

const INFINITY_TEXT = Buffer.from('infinity');

/**
 * Parses `Y…Y-MM-DD[ HH:MM:SS[.f…]][±HH[:MM[:SS]]][ BC]` (date, timestamp and timestamptz output with DateStyle ISO)
 * or `[-]infinity` into `out`. False when the text has another shape (another DateStyle).
 */
export function parseIsoDateTime(v: Buffer, out: Float64Array): boolean {
  const end = v.length;
  if (end > 0 && v[end - 1] === 0x79 /* y */) {
    const isNeg = v[0] === MINUS;
    const start = isNeg ? 1 : 0;
    if (
      end - start !== INFINITY_TEXT.length ||
      v.compare(INFINITY_TEXT, 0, INFINITY_TEXT.length, start) !== 0
    ) {
      return false;
    }
    out[0] = isNeg ? -Infinity : Infinity;
    out[1] = 0;
    return true;
  }
  cursor = 0;
  let year = readDigits(v, 9);
  if (year < 0 || v[cursor++] !== MINUS) return false;
  const month = readDigits(v, 2);
  if (month < 1 || v[cursor++] !== MINUS) return false;
  const day = readDigits(v, 2);
  if (day < 1) return false;
  let seconds = 0;
  let micros = 0;
  if (cursor + 1 < end && v[cursor] === SPACE && v[cursor + 1] !== 0x42 /* B */) {
    cursor++;
    const hours = readDigits(v, 2);
    if (hours < 0 || v[cursor++] !== COLON) return false;
    const minutes = readDigits(v, 2);
    if (minutes < 0 || v[cursor++] !== COLON) return false;
    const secs = readDigits(v, 2);
    if (secs < 0) return false;
    seconds = hours * 3600 + minutes * 60 + secs;
    if (cursor < end && v[cursor] === DOT) {
      cursor++;
      const start = cursor;
      const fraction = readDigits(v, 6);
      if (fraction < 0) return false;
      micros = fraction * 10 ** (6 - (cursor - start));
    }
    if (cursor < end && (v[cursor] === PLUS || v[cursor] === MINUS)) {
      const sign = v[cursor++] === MINUS ? -1 : 1;
      const offsetHours = readDigits(v, 2);
      if (offsetHours < 0) return false;
      let offset = offsetHours * 3600;
      for (let unit = 60; unit >= 1 && cursor < end && v[cursor] === COLON; unit /= 60) {
        cursor++;
        const part = readDigits(v, 2);
        if (part < 0) return false;
        offset += part * unit;
      }
      seconds -= sign * offset;
    }
  }
  if (cursor + 3 === end && v[cursor] === SPACE && v[cursor + 1] === 0x42 && v[cursor + 2] === 0x43) {
    year = 1 - year; // " BC": 1 BC is astronomical year 0
    cursor += 3;
  }
  if (cursor !== end) return false;
  out[0] = daysFromCivil(year, month, day) * 86400 + seconds;
  out[1] = micros;
  return true;
}

/** Read position of `parseIsoDateTime` (module state rather than a closure: no allocation per comparison). */
let cursor = 0;

/** Up to `maxCount` decimal digits at `cursor` as a number; -1 when there is none. */
function readDigits(v: Buffer, maxCount: number): number {
  let value = 0;
  const start = cursor;
  while (cursor < v.length && cursor - start < maxCount && v[cursor] >= ZERO && v[cursor] <= ZERO + 9) {
    value = value * 10 + v[cursor++] - ZERO;
  }
  return cursor === start ? -1 : value;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

// ---- numeric binary format (numeric_send / numeric_recv) ----

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;
const NBASE_DIGITS = 4;

/** numeric_send bytes (int16 ndigits, weight, sign, dscale, then base-10000 digits) → numeric_out text. */
export function numericBinaryToText(v: Buffer): string {
  const digitCount = v.readInt16BE(0);
  const weight = v.readInt16BE(2);
  const sign = v.readUInt16BE(4);
  const displayScale = v.readInt16BE(6);
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  const digit = (i: number): number => (i >= 0 && i < digitCount ? v.readInt16BE(8 + 2 * i) : 0);
  let integer = '';
  if (weight < 0) integer = '0';
  else
    for (let i = 0; i <= weight; i++)
      integer += i === 0 ? String(digit(i)) : String(digit(i)).padStart(4, '0');
  let fraction = '';
  for (let i = weight + 1; fraction.length < displayScale; i++) fraction += String(digit(i)).padStart(4, '0');
  fraction = fraction.slice(0, displayScale);
  const isNeg = sign === NUMERIC_NEG && digitCount > 0;
  return (isNeg ? '-' : '') + integer + (displayScale > 0 ? '.' + fraction : '');
}

/** numeric_out text → numeric_send bytes (normalized: no leading or trailing zero base-10000 digits). */
export function numericTextToBinary(text: string): Buffer {
  const special =
    text === 'NaN'
      ? NUMERIC_NAN
      : text === 'Infinity'
        ? NUMERIC_PINF
        : text === '-Infinity'
          ? NUMERIC_NINF
          : -1;
  if (special >= 0) return numericHeader(0, 0, special, 0);
  const isNeg = text.startsWith('-');
  const body = isNeg ? text.slice(1) : text;
  const dot = body.indexOf('.');
  const integer = (dot < 0 ? body : body.slice(0, dot)).replace(/^0+/, '');
  const fraction = dot < 0 ? '' : body.slice(dot + 1);
  const integerPadded = integer.padStart(Math.ceil(integer.length / NBASE_DIGITS) * NBASE_DIGITS, '0');
  const fractionPadded = fraction.padEnd(Math.ceil(fraction.length / NBASE_DIGITS) * NBASE_DIGITS, '0');
  const all = integerPadded + fractionPadded;
  const digits: number[] = [];
  for (let i = 0; i < all.length; i += NBASE_DIGITS) digits.push(Number(all.slice(i, i + NBASE_DIGITS)));
  let weight = integerPadded.length / NBASE_DIGITS - 1;
  let first = 0;
  while (first < digits.length && digits[first] === 0) {
    first++;
    weight--;
  }
  let last = digits.length;
  while (last > first && digits[last - 1] === 0) last--;
  const kept = digits.slice(first, last);
  if (kept.length === 0) weight = 0;
  const out = numericHeader(
    kept.length,
    weight,
    isNeg && kept.length > 0 ? NUMERIC_NEG : NUMERIC_POS,
    fraction.length,
  );
  for (let i = 0; i < kept.length; i++) out.writeInt16BE(kept[i], 8 + 2 * i);
  return out;
}

function numericHeader(digitCount: number, weight: number, sign: number, displayScale: number): Buffer {
  const out = Buffer.alloc(8 + 2 * digitCount);
  out.writeInt16BE(digitCount, 0);
  out.writeInt16BE(weight, 2);
  out.writeUInt16BE(sign, 4);
  out.writeInt16BE(displayScale, 6);
  return out;
}

// ---- exact decimal addition ----

/** An exact decimal (value × 10^-scale), or one of numeric's special values. */
export type Decimal = { value: bigint; scale: number } | 'NaN' | 'Infinity' | '-Infinity';

const DECIMAL_SYNTAX = /^([+-]?)(\d*)(?:\.(\d*))?$/;

/** int*out / numeric_out text → Decimal. */
function parseDecimal(text: string): Decimal {
  if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
  const m = DECIMAL_SYNTAX.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) {
    throw PgError.internal(`a shard returned "${text}" where a number was expected`);
  }
  const fraction = m[3] ?? '';
  const magnitude = BigInt((m[2] || '0') + fraction);
  return { value: m[1] === '-' ? -magnitude : magnitude, scale: fraction.length };
}

/** numeric addition: exact, the larger scale; NaN absorbs, Infinity + -Infinity is NaN. */
function addDecimals(a: Decimal, b: Decimal): Decimal {
  if (a === 'NaN' || b === 'NaN') return 'NaN';
  if (typeof a === 'string' || typeof b === 'string') {
    if (typeof a === 'string' && typeof b === 'string' && a !== b) return 'NaN'; // Infinity + -Infinity
    return typeof a === 'string' ? a : (b as 'Infinity' | '-Infinity');
  }
  const scale = Math.max(a.scale, b.scale);
  return {
    value: a.value * 10n ** BigInt(scale - a.scale) + b.value * 10n ** BigInt(scale - b.scale),
    scale,
  };
}

/** Decimal → numeric_out text (its scale's fraction digits). */
export function formatDecimal(d: Decimal): string {
  if (typeof d === 'string') return d;
  const isNeg = d.value < 0n;
  const digits = (isNeg ? -d.value : d.value).toString().padStart(d.scale + 1, '0');
  const integer = digits.slice(0, digits.length - d.scale);
  return (isNeg ? '-' : '') + integer + (d.scale > 0 ? '.' + digits.slice(digits.length - d.scale) : '');
}

/** Exact sum of decimal texts (int*out / numeric_out), with numeric's result scale (the largest input scale). */
export function addDecimalTexts(texts: readonly string[]): string {
  let sum: Decimal = { value: 0n, scale: 0 };
  for (const t of texts) sum = addDecimals(sum, parseDecimal(t));
  return formatDecimal(sum);
}

// ---- float output as float4out/float8out print it (extra_float_digits = 1, the default since PostgreSQL 12) ----

/** Shortest round-trip text in PostgreSQL's layout: fixed for exponents in [-4, maxFixedExponent), else d.ddde±XX. */
export function formatFloat(x: number, isFloat4: boolean): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  let shortest = x;
  if (isFloat4) {
    // The fewest digits that read back as the same float4.
    for (let precision = 1; precision <= 9; precision++) {
      const candidate = Number(x.toPrecision(precision));
      if (Math.fround(candidate) === x) {
        shortest = candidate;
        break;
      }
    }
  }
  const [mantissa, exponentText] = shortest.toExponential().split('e');
  const exponent = Number(exponentText);
  const maxFixedExponent = isFloat4 ? 6 : 15;
  if (exponent >= -4 && exponent < maxFixedExponent) return String(shortest);
  return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

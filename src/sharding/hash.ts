// PostgreSQL's PARTITION BY HASH, exactly: Bob Jenkins' lookup3 as in src/common/hashfn.c (hash_bytes_extended,
// hash_bytes_uint32_extended), the per-type extended hash functions (hashint8extended, hashint4extended,
// hashtextextended for deterministic collations, uuid_hash_extended), HASH_PARTITION_SEED and hash_combine64 as in
// partbounds.c compute_partition_hash_value. A key hashes to the shard PostgreSQL would pick for
// `FOR VALUES WITH (MODULUS shardCount, REMAINDER shard)`. Little-endian byte order, as on x86-64 and arm64 servers
// (hash_bytes reads 4-byte words in native order, so big-endian servers place text and uuid keys differently).

import { Buffer } from 'node:buffer';
import type { ShardKeyType } from './schema.js';

/** partition.h HASH_PARTITION_SEED (0x7A5B22367996DCFD), as two 32-bit halves. */
const SEED_HI = 0x7a5b2236;
const SEED_LO = 0x7996dcfd;
export const HASH_PARTITION_SEED = 0x7a5b22367996dcfdn;

/** hashfn.h hash_combine64's constant 0x49a0f4dd15e5a8e3, as two 32-bit halves. */
const COMBINE_HI = 0x49a0f4dd;
const COMBINE_LO = 0x15e5a8e3;

/** lookup3's initial value: 0x9e3779b9 + length + 3923095. */
const INIT = 0x9e3779b9 + 3923095;

const TWO_POW_32 = 0x1_0000_0000;
const INT8_MIN = -(1n << 63n);
const INT8_MAX = (1n << 63n) - 1n;
const INT4_MIN = -0x8000_0000;
const INT4_MAX = 0x7fff_ffff;
/** Largest shard count accepted (shard numbers are 0–65535 in the config). */
export const MAX_SHARD_COUNT = 65_536;

/**
 * lookup3 state a, b, c. A Uint32Array stores every value modulo 2^32, which is C's uint32 arithmetic.
 * Shared scratch: every function below runs to completion synchronously, so no caller sees another's state.
 */
const s = new Uint32Array(3);

function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** hashfn.c mix(a, b, c). */
function mix(): void {
  s[0] -= s[2];
  s[0] ^= rot(s[2], 4);
  s[2] += s[1];
  s[1] -= s[0];
  s[1] ^= rot(s[0], 6);
  s[0] += s[2];
  s[2] -= s[1];
  s[2] ^= rot(s[1], 8);
  s[1] += s[0];
  s[0] -= s[2];
  s[0] ^= rot(s[2], 16);
  s[2] += s[1];
  s[1] -= s[0];
  s[1] ^= rot(s[0], 19);
  s[0] += s[2];
  s[2] -= s[1];
  s[2] ^= rot(s[1], 4);
  s[1] += s[0];
}

/** hashfn.c final(a, b, c). */
function final(): void {
  s[2] ^= s[1];
  s[2] -= rot(s[1], 14);
  s[0] ^= s[2];
  s[0] -= rot(s[2], 11);
  s[1] ^= s[0];
  s[1] -= rot(s[0], 25);
  s[2] ^= s[1];
  s[2] -= rot(s[1], 16);
  s[0] ^= s[2];
  s[0] -= rot(s[2], 4);
  s[1] ^= s[0];
  s[1] -= rot(s[0], 14);
  s[2] ^= s[1];
  s[2] -= rot(s[1], 24);
}

/** a = b = c = INIT + length; then, for a non-zero seed, a += seed >> 32, b += (uint32) seed, mix. */
function start(length: number, seedHi: number, seedLo: number): void {
  s[0] = s[1] = s[2] = INIT + length;
  if (seedHi !== 0 || seedLo !== 0) {
    s[0] += seedHi;
    s[1] += seedLo;
    mix();
  }
}

/** Little-endian 32-bit word of `bytes` at `at`, zero past `end` (the tail of hash_bytes_extended). */
function wordLE(bytes: Uint8Array, at: number, end: number): number {
  let word = 0;
  for (let i = Math.min(end, at + 4) - 1; i >= at; i--) word = word * 256 + bytes[i];
  return word;
}

/** hash_bytes_extended(k, len, seed); leaves the 64-bit result in b (high) and c (low). */
function hashBytesState(bytes: Uint8Array, seedHi: number, seedLo: number): void {
  const length = bytes.length;
  start(length, seedHi, seedLo);
  let at = 0;
  for (; length - at >= 12; at += 12) {
    s[0] += wordLE(bytes, at, length);
    s[1] += wordLE(bytes, at + 4, length);
    s[2] += wordLE(bytes, at + 8, length);
    mix();
  }
  // The last 0–11 bytes: a gets bytes 0–3, b bytes 4–7, c bytes 8–10 shifted up one byte
  // ("the lowest byte of c is reserved for the length").
  if (at < length) s[0] += wordLE(bytes, at, length);
  if (at + 4 < length) s[1] += wordLE(bytes, at + 4, length);
  if (at + 8 < length) s[2] += wordLE(bytes, at + 8, length) * 256;
  final();
}

/** hash_bytes_uint32_extended(k, seed); leaves the result in b (high) and c (low). */
function hashUint32State(k: number, seedHi: number, seedLo: number): void {
  start(4, seedHi, seedLo);
  s[0] += k;
  final();
}

/** The 64-bit result (b << 32) | c, as an unsigned bigint. */
function stateResult(): bigint {
  return (BigInt(s[1]) << 32n) | BigInt(s[2]);
}

function seedHalves(seed: bigint): [number, number] {
  const unsigned = BigInt.asUintN(64, seed);
  return [Number(unsigned >> 32n), Number(unsigned & 0xffff_ffffn)];
}

/** PostgreSQL's hash_any_extended(bytes, len, seed), as an unsigned 64-bit bigint. */
export function hashBytesExtended(bytes: Uint8Array, seed: bigint): bigint {
  hashBytesState(bytes, ...seedHalves(seed));
  return stateResult();
}

/** PostgreSQL's hash_uint32_extended(k, seed), as an unsigned 64-bit bigint. */
export function hashUint32Extended(k: number, seed: bigint): bigint {
  hashUint32State(k >>> 0, ...seedHalves(seed));
  return stateResult();
}

/** hashint8extended's folding: lohalf ^= (val >= 0) ? hihalf : ~hihalf. */
function int8LowHalf(value: bigint): number {
  const unsigned = BigInt.asUintN(64, value);
  const hi = Number(unsigned >> 32n);
  const lo = Number(unsigned & 0xffff_ffffn);
  return (lo ^ (value >= 0n ? hi : ~hi)) >>> 0;
}

/** PostgreSQL's hashint8extended(value, seed) (same as hashint4extended for values in int4 range). */
export function hashInt8Extended(value: bigint, seed: bigint): bigint {
  checkInteger(value, INT8_MIN, INT8_MAX, 'bigint');
  return hashUint32Extended(int8LowHalf(value), seed);
}

/** PostgreSQL's hashint4extended(value, seed) (hashint2extended too: both widen to int32 first). */
export function hashInt4Extended(value: number, seed: bigint): bigint {
  checkInteger(BigInt(value), BigInt(INT4_MIN), BigInt(INT4_MAX), 'integer');
  return hashUint32Extended(value >>> 0, seed);
}

function checkInteger(value: bigint, min: bigint, max: bigint, typeName: string): void {
  if (value < min || value > max) throw new RangeError(`${value} is out of range for type ${typeName}`);
}

/**
 * The remainder PostgreSQL picks: hash_combine64(0, hash) % modulus, where hash_combine64(0, h) is
 * h + 0x49a0f4dd15e5a8e3 (mod 2^64). Computed on the halves left in b and c, without BigInt.
 */
function remainderOfState(modulus: number): number {
  return remainderOf(s[1], s[2], modulus);
}

/** remainderOfState for the hash whose halves are `high` and `low` (unsigned 32-bit). */
function remainderOf(high: number, low: number, modulus: number): number {
  const lo = low + COMBINE_LO;
  const carry = lo >= TWO_POW_32 ? 1 : 0;
  const hi = (high + COMBINE_HI + carry) % TWO_POW_32;
  // rowHash = hi * 2^32 + lo' (mod 2^64); every product below stays under 2^32 since modulus <= 2^16.
  return ((hi % modulus) * (TWO_POW_32 % modulus) + ((lo % TWO_POW_32) % modulus)) % modulus;
}

/** What hashShard accepts per key type. */
export type HashKeyValue = bigint | string | Uint8Array;

/**
 * The shard (partition remainder) PostgreSQL gives `value` in a table `PARTITION BY HASH (key)` with
 * `MODULUS shardCount`. value: bigint for bigint/integer (range-checked), string (encoded as UTF-8) or bytes for
 * text, 16 bytes or the canonical text form for uuid. Throws RangeError/TypeError for values that do not fit:
 * validate user input first (shard-of.ts turns it into PgErrors).
 */
export function hashShard(keyType: ShardKeyType, value: HashKeyValue, shardCount: number): number {
  checkShardCount(shardCount);
  switch (keyType) {
    case 'bigint':
      hashUint32State(int8LowHalf(integerValue(value, INT8_MIN, INT8_MAX, keyType)), SEED_HI, SEED_LO);
      break;
    case 'integer':
      hashUint32State(
        Number(integerValue(value, BigInt(INT4_MIN), BigInt(INT4_MAX), keyType)) >>> 0,
        SEED_HI,
        SEED_LO,
      );
      break;
    case 'text':
      hashBytesState(textBytes(value), SEED_HI, SEED_LO);
      break;
    case 'uuid':
      hashBytesState(uuidBytes(value), SEED_HI, SEED_LO);
      break;
  }
  return remainderOfState(shardCount);
}

/**
 * hashShard of an integer or bigint key given as a Number (a safe integer, as key-value.ts plainDecimal reads one):
 * the same shard without a BigInt. For values in int4 range hashint8extended and hashint4extended agree, so one
 * function serves both key types; the caller checks an integer key's range. hashint8extended's folding on the
 * halves of the two's-complement value: the low word is `value mod 2^32`, the high word `floor(value / 2^32)`.
 */
export function hashShardSafeInteger(value: number, shardCount: number): number {
  checkShardCount(shardCount);
  if (!Number.isSafeInteger(value)) throw new RangeError(`${value} is not a safe integer`);
  const lo = value >>> 0;
  const hi = Math.floor(value / TWO_POW_32) | 0;
  return seededUint32Remainder((lo ^ (value >= 0 ? hi : ~hi)) | 0, shardCount);
}

/**
 * lookup3's state once `start(4, HASH_PARTITION_SEED)` has run — the same for every 4-byte key, so made once — as
 * int32 values.
 */
const [SEEDED_A, SEEDED_B, SEEDED_C] = ((): number[] => {
  start(4, SEED_HI, SEED_LO);
  return [s[0] | 0, s[1] | 0, s[2] | 0];
})();

/**
 * hashUint32State(k, HASH_PARTITION_SEED) then remainderOfState(modulus), on int32 locals: from the state made once
 * above, a += k and final(); no Uint32Array reads (a value over 2^31 read from one is a heap number in code V8 has
 * not optimized yet). `k`: the key word as an int32.
 */
function seededUint32Remainder(k: number, modulus: number): number {
  let a = (SEEDED_A + k) | 0;
  let b = SEEDED_B;
  let c = SEEDED_C;
  c ^= b;
  c = (c - rot(b, 14)) | 0;
  a ^= c;
  a = (a - rot(c, 11)) | 0;
  b ^= a;
  b = (b - rot(a, 25)) | 0;
  c ^= b;
  c = (c - rot(b, 16)) | 0;
  a ^= c;
  a = (a - rot(c, 4)) | 0;
  b ^= a;
  b = (b - rot(a, 14)) | 0;
  c ^= b;
  c = (c - rot(b, 24)) | 0;
  return remainderOf(b >>> 0, c >>> 0, modulus);
}

/** The full 64-bit partition hash (hash_combine64(0, typeHash)) of a value, for tests and tools. */
export function partitionHash(keyType: ShardKeyType, value: HashKeyValue): bigint {
  const typeHash =
    keyType === 'bigint'
      ? hashInt8Extended(integerValue(value, INT8_MIN, INT8_MAX, keyType), HASH_PARTITION_SEED)
      : keyType === 'integer'
        ? hashInt4Extended(
            Number(integerValue(value, BigInt(INT4_MIN), BigInt(INT4_MAX), keyType)),
            HASH_PARTITION_SEED,
          )
        : hashBytesExtended(keyType === 'uuid' ? uuidBytes(value) : textBytes(value), HASH_PARTITION_SEED);
  return BigInt.asUintN(64, typeHash + 0x49a0f4dd15e5a8e3n);
}

function checkShardCount(shardCount: number): void {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw new RangeError(`shard count must be an integer from 1 to ${MAX_SHARD_COUNT}, got ${shardCount}`);
  }
}

function integerValue(value: HashKeyValue, min: bigint, max: bigint, keyType: ShardKeyType): bigint {
  if (typeof value !== 'bigint') throw new TypeError(`a ${keyType} key must be a bigint`);
  checkInteger(value, min, max, keyType);
  return value;
}

function bytesValue(value: HashKeyValue): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('a text key must be a string or bytes');
  return value;
}

function textBytes(value: HashKeyValue): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : bytesValue(value);
}

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function uuidBytes(value: HashKeyValue): Uint8Array {
  if (typeof value === 'string') {
    if (!CANONICAL_UUID.test(value)) throw new TypeError(`not a canonical lower-case uuid: ${value}`);
    return Buffer.from(value.replace(/-/g, ''), 'hex');
  }
  if (!(value instanceof Uint8Array) || value.length !== 16)
    throw new TypeError('a uuid key must be 16 bytes');
  return value;
}

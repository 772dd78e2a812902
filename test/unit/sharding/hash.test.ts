// hash.ts against values PostgreSQL 15 computed (hashint8extended / hashint4extended / hashtextextended /
// uuid_hash_extended with HASH_PARTITION_SEED, and the partition a real PARTITION BY HASH table chose), plus properties.
import { describe, expect, it } from 'vitest';
import {
  HASH_PARTITION_SEED,
  hashBytesExtended,
  hashInt4Extended,
  hashInt8Extended,
  hashShard,
  hashShardSafeInteger,
  partitionHash,
} from '../../../src/sharding/hash.js';
import type { ShardKeyType } from '../../../src/sharding/schema.js';

const MODULI = [2, 3, 5, 7];

/** [value, PostgreSQL's type hash with HASH_PARTITION_SEED (signed, as SQL returns it), remainder per modulus]. */
type Known = [string, bigint, number[]];

const KNOWN: Record<ShardKeyType, Known[]> = {
  bigint: [
    ['0', -4403592609991167795n, [0, 2, 3, 4]],
    ['1', 5968994663651403477n, [0, 2, 0, 5]],
    ['-1', -5017072347659237694n, [1, 2, 4, 0]],
    ['42', 7363975540656877951n, [0, 0, 4, 0]],
    ['-9223372036854775808', -6050265599104649060n, [1, 1, 4, 0]],
    ['9223372036854775807', 4938542303000433043n, [0, 0, 1, 3]],
    ['4294967296', 5968994663651403477n, [0, 2, 0, 5]],
    ['123456789012', 1825551100719034884n, [1, 2, 2, 2]],
  ],
  integer: [
    ['0', -4403592609991167795n, [0, 2, 3, 4]],
    ['1', 5968994663651403477n, [0, 2, 0, 5]],
    ['-1', -5017072347659237694n, [1, 2, 4, 0]],
    ['42', 7363975540656877951n, [0, 0, 4, 0]],
    ['-2147483648', 4938542303000433043n, [0, 0, 1, 3]],
    ['2147483647', -6050265599104649060n, [1, 1, 4, 0]],
  ],
  text: [
    ['', -5700645584453517373n, [0, 2, 1, 1]],
    ['a', -6705225459120232837n, [0, 2, 2, 3]],
    ['abc', 3628778498291917250n, [1, 1, 3, 3]],
    ['hello world', 7664296498819024037n, [0, 1, 0, 4]],
    ['abcdefghijkl', -7876791541613377658n, [1, 1, 1, 3]],
    ['héllo wörld', -145319379157667650n, [1, 1, 3, 5]],
    ['数据库', -2640937409563530087n, [0, 2, 1, 0]],
    ['😀 emoji', -2622193138989999472n, [1, 1, 1, 1]],
  ],
  uuid: [
    ['00000000-0000-0000-0000-000000000000', -5281082146396728638n, [1, 0, 0, 2]],
    ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 424513190990560493n, [0, 1, 1, 6]],
    ['ffffffff-ffff-ffff-ffff-ffffffffffff', -148986464341306210n, [1, 1, 3, 0]],
  ],
};

function typeHash(keyType: ShardKeyType, value: string): bigint {
  switch (keyType) {
    case 'bigint':
      return hashInt8Extended(BigInt(value), HASH_PARTITION_SEED);
    case 'integer':
      return hashInt4Extended(Number(value), HASH_PARTITION_SEED);
    case 'text':
      return hashBytesExtended(Buffer.from(value, 'utf8'), HASH_PARTITION_SEED);
    case 'uuid':
      return hashBytesExtended(Buffer.from(value.replace(/-/g, ''), 'hex'), HASH_PARTITION_SEED);
  }
}

function keyOf(keyType: ShardKeyType, value: string): bigint | string {
  return keyType === 'bigint' || keyType === 'integer' ? BigInt(value) : value;
}

describe.each(Object.keys(KNOWN) as ShardKeyType[])('%s keys match PostgreSQL', (keyType) => {
  it.each(KNOWN[keyType])('%s', (value, expectedHash, remainders) => {
    expect(typeHash(keyType, value)).toBe(BigInt.asUintN(64, expectedHash));
    MODULI.forEach((modulus, index) => {
      expect(hashShard(keyType, keyOf(keyType, value), modulus)).toBe(remainders[index]);
      // The Number path of integer keys (hashShardSafeInteger) against PostgreSQL's own remainders too.
      const n = Number(value);
      if ((keyType === 'bigint' || keyType === 'integer') && Number.isSafeInteger(n))
        expect(hashShardSafeInteger(n, modulus)).toBe(remainders[index]);
    });
  });
});

describe('hashShardSafeInteger (integer keys without a BigInt)', () => {
  it('gives the BigInt path’s shard around every word boundary and at the ends of the safe range', () => {
    const edges = [0, 1, 42, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001];
    edges.push(2 ** 52, Number.MAX_SAFE_INTEGER, 999_999_999_999_999, 123_456_789_012);
    const values = [...edges, ...edges.map((v) => -v), -0];
    for (let i = 0; i < 2_000; i++)
      values.push(Math.floor((Math.random() - 0.5) * 2 * Number.MAX_SAFE_INTEGER));
    for (const v of values) {
      for (const modulus of [1, 2, 3, 7, 65_536]) {
        expect(hashShardSafeInteger(v, modulus), `${v} % ${modulus}`).toBe(
          hashShard('bigint', BigInt(v), modulus),
        );
        if (v >= -0x8000_0000 && v <= 0x7fff_ffff)
          expect(hashShardSafeInteger(v, modulus)).toBe(hashShard('integer', BigInt(v), modulus));
      }
    }
  });

  it('refuses what is not a safe integer, and bad shard counts', () => {
    for (const v of [0.5, 2 ** 53, -(2 ** 53), NaN, Infinity])
      expect(() => hashShardSafeInteger(v, 2)).toThrow(RangeError);
    for (const count of [0, 1.5, 65_537]) expect(() => hashShardSafeInteger(1, count)).toThrow(RangeError);
  });
});

describe('hash_any_extended', () => {
  it('depends on every byte and on the length', () => {
    const seen = new Set<bigint>();
    for (let length = 0; length <= 40; length++) {
      seen.add(hashBytesExtended(Buffer.alloc(length, 0x61), HASH_PARTITION_SEED));
    }
    expect(seen.size).toBe(41);
    const base = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    for (let i = 0; i < base.length; i++) {
      const changed = Buffer.from(base);
      changed[i] ^= 1;
      expect(hashBytesExtended(changed, HASH_PARTITION_SEED)).not.toBe(
        hashBytesExtended(base, HASH_PARTITION_SEED),
      );
    }
  });
});

describe('hashShard properties', () => {
  it('agrees with partitionHash % modulus', () => {
    for (let i = -500n; i <= 500n; i += 7n) {
      for (const modulus of [1, 2, 3, 4, 5, 16, 1000, 65_536]) {
        expect(hashShard('bigint', i * 982_451_653n, modulus)).toBe(
          Number(partitionHash('bigint', i * 982_451_653n) % BigInt(modulus)),
        );
      }
      expect(hashShard('text', `key-${i}`, 7)).toBe(Number(partitionHash('text', `key-${i}`) % 7n));
    }
  });

  it('gives bigint and integer the same shard for values in integer range (cross-type hashing)', () => {
    for (const value of [0n, 1n, -1n, 12_345n, -2_147_483_648n, 2_147_483_647n]) {
      expect(hashShard('bigint', value, 5)).toBe(hashShard('integer', value, 5));
    }
  });

  it('hashes text given as a string or as its UTF-8 bytes alike, and uuid as text or bytes alike', () => {
    expect(hashShard('text', 'héllo', 3)).toBe(hashShard('text', Buffer.from('héllo'), 3));
    const uuid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    expect(hashShard('uuid', uuid, 7)).toBe(hashShard('uuid', Buffer.from(uuid.replace(/-/g, ''), 'hex'), 7));
  });

  it('spreads keys evenly', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0n; i < 40_000n; i++) counts[hashShard('bigint', i, 4)]++;
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(500);
  });

  it('puts everything on shard 0 of 1', () => {
    expect(hashShard('text', 'anything', 1)).toBe(0);
  });

  it('refuses values that do not fit the key type, and bad shard counts', () => {
    expect(() => hashShard('bigint', 1n << 63n, 2)).toThrow(RangeError);
    expect(() => hashShard('integer', 1n << 31n, 2)).toThrow(RangeError);
    expect(() => hashShard('bigint', '1', 2)).toThrow(TypeError);
    expect(() => hashShard('uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 2)).toThrow(TypeError);
    expect(() => hashShard('uuid', Buffer.alloc(15), 2)).toThrow(TypeError);
    expect(() => hashShard('text', 1n, 2)).toThrow(TypeError);
    for (const count of [0, -1, 1.5, 65_537])
      expect(() => hashShard('bigint', 1n, count)).toThrow(RangeError);
  });
});

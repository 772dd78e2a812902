// hashShard against a real PostgreSQL: for bigint, integer, text and uuid keys, tables PARTITION BY HASH (k) with
// MODULUS 2, 3 and 5 are filled server-side with >= 10,000 keys each (negatives, 0, extremes, empty and multi-byte
// strings, random uuids); every row's partition must be the shard hashShard computes from its text form, and the
// shard shardForParameter computes from its binary form (the bytes a client would bind).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { hashShard } from '../../src/sharding/hash.js';
import type { ShardedColumn, ShardKeyType } from '../../src/sharding/schema.js';
import { shardForParameter } from '../../src/sharding/shard-of.js';
import { testServers } from '../helpers/pg-servers.js';

const DB = 'hash_partition';
const MODULI = [2, 3, 5];
const MIN_KEYS = 10_000;

interface KeySet {
  keyType: ShardKeyType;
  sqlType: string;
  /** Binary send function: the bytes a client binds in binary format. */
  send: string;
  /** A query whose one column is the keys. */
  keys: string;
}

const KEY_SETS: KeySet[] = [
  {
    keyType: 'bigint',
    sqlType: 'bigint',
    send: 'int8send',
    keys: `SELECT g FROM generate_series(-5000, 5000) g
      UNION ALL SELECT ('x' || md5(g::text))::bit(64)::bigint FROM generate_series(1, 5000) g
      UNION ALL SELECT unnest('{-9223372036854775808, 9223372036854775807, -9223372036854775807, 9223372036854775806,
        2147483647, 2147483648, -2147483648, -2147483649, 4294967295, 4294967296, -4294967296}'::bigint[])`,
  },
  {
    keyType: 'integer',
    sqlType: 'integer',
    send: 'int4send',
    keys: `SELECT g FROM generate_series(-5000, 5000) g
      UNION ALL SELECT ('x' || substr(md5(g::text), 1, 8))::bit(32)::int FROM generate_series(1, 5000) g
      UNION ALL SELECT unnest('{-2147483648, 2147483647, -2147483647, 2147483646}'::int[])`,
  },
  {
    keyType: 'text',
    sqlType: 'text',
    send: 'textsend',
    // Empty; 32-byte md5s; every length 0–49 (all lookup3 tail cases); multi-byte UTF-8; single code points.
    keys: `SELECT ''
      UNION ALL SELECT md5(g::text) FROM generate_series(1, 4000) g
      UNION ALL SELECT substr(md5(g::text) || md5((-g)::text), 1, g % 50) FROM generate_series(1, 3000) g
      UNION ALL SELECT repeat('é', g % 9) || g || 'ü数据😀' FROM generate_series(1, 2000) g
      UNION ALL SELECT chr(g) FROM generate_series(1, 1500) g`,
  },
  {
    keyType: 'uuid',
    sqlType: 'uuid',
    send: 'uuid_send',
    keys: `SELECT gen_random_uuid() FROM generate_series(1, 6000)
      UNION ALL SELECT md5(g::text)::uuid FROM generate_series(1, 4000) g
      UNION ALL SELECT unnest('{00000000-0000-0000-0000-000000000000, ffffffff-ffff-ffff-ffff-ffffffffffff}'::uuid[])`,
  },
];

function tableName(keySet: KeySet, modulus: number, remainder?: number): string {
  const base = `t_${keySet.keyType}_${modulus}`;
  return remainder === undefined ? base : `${base}_${remainder}`;
}

/** One simple-query batch: the key source table, then a hash-partitioned copy per modulus. */
function setupSql(keySet: KeySet): string {
  const statements = [`CREATE TABLE keys_${keySet.keyType} AS ${keySet.keys}`];
  for (const modulus of MODULI) {
    const parent = tableName(keySet, modulus);
    statements.push(`CREATE TABLE ${parent} (k ${keySet.sqlType}) PARTITION BY HASH (k)`);
    for (let remainder = 0; remainder < modulus; remainder++) {
      statements.push(
        `CREATE TABLE ${tableName(keySet, modulus, remainder)} PARTITION OF ${parent}
          FOR VALUES WITH (MODULUS ${modulus}, REMAINDER ${remainder})`,
      );
    }
    statements.push(`INSERT INTO ${parent} SELECT * FROM keys_${keySet.keyType}`);
  }
  return statements.join(';\n');
}

function keyValue(keyType: ShardKeyType, text: string): bigint | string {
  return keyType === 'bigint' || keyType === 'integer' ? BigInt(text) : text;
}

describe('hashShard matches PostgreSQL PARTITION BY HASH', () => {
  let cluster: PgCluster;
  let client: pg.Client;

  beforeAll(async () => {
    cluster = await testServers(1, { databases: [DB] });
    const [server] = cluster.servers;
    client = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.superuser,
      password: server.superuserPassword,
      database: DB,
    });
    await client.connect();
    for (const keySet of KEY_SETS) await client.query(setupSql(keySet));
  });

  afterAll(async () => {
    await client?.end();
    await cluster?.stop();
  });

  describe.each(KEY_SETS)('$keyType keys', (keySet) => {
    const column: ShardedColumn = {
      database: DB,
      schema: null,
      table: 't',
      column: 'k',
      keyType: keySet.keyType,
      fn: { kind: 'hash' },
    };

    it.each(MODULI)('MODULUS %i: every row is in the partition hashShard picks', async (modulus) => {
      const result = await client.query<[string, Buffer, string]>({
        text: `SELECT k::text, ${keySet.send}(k), tableoid::regclass::text FROM ${tableName(keySet, modulus)}`,
        rowMode: 'array',
      });
      expect(result.rows.length).toBeGreaterThanOrEqual(MIN_KEYS);
      const prefix = `${tableName(keySet, modulus)}_`;
      const rowsPerShard = new Array<number>(modulus).fill(0);
      const mismatches: string[] = [];
      for (const [text, binary, partition] of result.rows) {
        const expected = Number(partition.slice(prefix.length));
        rowsPerShard[expected]++;
        const fromText = hashShard(keySet.keyType, keyValue(keySet.keyType, text), modulus);
        const fromBinary = shardForParameter(column, modulus, binary, 1);
        if (fromText !== expected || fromBinary !== expected) {
          mismatches.push(
            `${JSON.stringify(text)}: PostgreSQL ${expected}, text ${fromText}, binary ${fromBinary}`,
          );
        }
      }
      expect(mismatches.slice(0, 10)).toEqual([]);
      for (const count of rowsPerShard) expect(count).toBeGreaterThan(result.rows.length / modulus / 2);
    });
  });
});

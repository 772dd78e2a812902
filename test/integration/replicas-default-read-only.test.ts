// Sessions whose transactions are READ ONLY by default — `SET default_transaction_read_only = on`, `SET SESSION
// CHARACTERISTICS AS TRANSACTION READ ONLY`, or the startup parameter (`options=-c default_transaction_read_only=on`) —
// against real streaming replicas, on a one-shard database and on a 2-shard one: a plain BEGIN opens a READ ONLY
// transaction that replicas serve as BEGIN READ ONLY does (one-phase COMMIT across shards), a write gets 25006 from
// PostgreSQL (inside a block and outside one, on the primary too), BEGIN READ WRITE overrides the default, RESET and
// `= off` undo it, and the next client of a pooled server does not inherit it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import {
  connect,
  databaseEntry,
  fanOut,
  hasNoLocalServers,
  onReplica,
  SEED_IDS,
  shardReplicaEntries,
  startShardedReplicas,
  waitFor,
} from '../helpers/replicas.js';
import { USERS_SHARDING_TOML } from '../helpers/sharding.js';

/** The ways a session makes its transactions READ ONLY by default; `options`: a startup `options` parameter. */
/** `undo`: what ends it (a RESET of a startup value would return to it, so that way is ended with `= off`). */
const WAYS: { name: string; sql?: string; options?: string; undo: string }[] = [
  {
    name: 'SET default_transaction_read_only = on',
    sql: 'SET default_transaction_read_only = on',
    undo: 'RESET default_transaction_read_only',
  },
  {
    name: 'SET SESSION CHARACTERISTICS',
    sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
    undo: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
  },
  {
    name: 'options=-c default_transaction_read_only=on',
    options: '-c default_transaction_read_only=on',
    undo: 'SET default_transaction_read_only = off',
  },
];

async function readOnlyClient(proxy: TestProxy, way: (typeof WAYS)[number]): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: proxy.url, options: way.options });
  client.on('error', () => undefined);
  await client.connect();
  if (way.sql !== undefined) await client.query(way.sql);
  return client;
}

async function codeOf(client: pg.Client, sql: string): Promise<string | null> {
  try {
    await client.query(sql);
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

async function mode(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ m: string }>('SELECT current_setting($1) AS m', [
    'transaction_read_only',
  ]);
  return rows[0].m;
}

describe.skipIf(hasNoLocalServers)('default_transaction_read_only with replicas', () => {
  let cluster: PgCluster;
  let replicaOf: number[] = [];
  let walDir: string;

  beforeAll(async () => {
    ({ cluster, replicaOf } = await startShardedReplicas());
    walDir = mkdtempSync(join(tmpdir(), 'shardgate-default-ro-'));
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
  });

  describe('one shard', () => {
    let proxy: TestProxy;
    beforeAll(async () => {
      proxy = await startTestProxy(cluster, {
        shards: 1,
        // One server connection: the next client gets the server the read-only session used.
        general: 'read_write_split = "exclude_primary"',
        userExtra: 'pool_size = 1',
        extraPgdog: databaseEntry(cluster, replicaOf[0], 'replica'),
      });
    });
    afterAll(async () => {
      await proxy?.close();
    });

    for (const way of WAYS) {
      it(`${way.name}: BEGIN runs on the replica, writes get 25006, BEGIN READ WRITE and RESET go back to the primary`, async () => {
        const client = await readOnlyClient(proxy, way);
        try {
          await client.query('BEGIN');
          expect(await onReplica(client)).toBe(true);
          expect(await mode(client)).toBe('on');
          await client.query('COMMIT');
          await client.query('BEGIN');
          expect(await codeOf(client, `INSERT INTO users VALUES (1000, 'x')`)).toBe('25006');
          await client.query('ROLLBACK');
          // Outside a block the write goes to the primary, whose session has the same default: PostgreSQL refuses it.
          expect(await codeOf(client, `INSERT INTO users VALUES (1001, 'x')`)).toBe('25006');
          await client.query('BEGIN READ WRITE');
          expect(await onReplica(client)).toBe(false);
          expect(await mode(client)).toBe('off');
          await client.query(`INSERT INTO users VALUES (1002, 'rw') ON CONFLICT DO NOTHING`);
          await client.query('ROLLBACK');
          await client.query(way.undo);
          await client.query('BEGIN');
          expect(await onReplica(client)).toBe(false);
          expect(await mode(client)).toBe('off');
          await client.query('ROLLBACK');
        } finally {
          await client.end();
        }
        // The next client of the same pooled server starts read-write.
        const next = await connect(proxy.url);
        try {
          await next.query('BEGIN');
          expect(await onReplica(next)).toBe(false);
          expect(await mode(next)).toBe('off');
          await next.query('ROLLBACK');
        } finally {
          await next.end();
        }
      });
    }

    it('= off undoes it; a client that never set it is unaffected by another that did', async () => {
      const ro = await readOnlyClient(proxy, WAYS[0]);
      const rw = await connect(proxy.url);
      try {
        await ro.query('BEGIN');
        expect(await onReplica(ro)).toBe(true);
        await ro.query('COMMIT');
        // The other client gets the same (only) pooled server: it must not inherit the default.
        expect(await codeOf(rw, `INSERT INTO users VALUES (1003, 'rw') ON CONFLICT DO NOTHING`)).toBeNull();
        await ro.query('SET default_transaction_read_only = off');
        await ro.query('BEGIN');
        expect(await onReplica(ro)).toBe(false);
        expect(await codeOf(ro, `INSERT INTO users VALUES (1004, 'rw') ON CONFLICT DO NOTHING`)).toBeNull();
        await ro.query('ROLLBACK');
      } finally {
        await ro.end();
        await rw.end();
      }
    });
  });

  describe('two shards', () => {
    let proxy: TestProxy;
    beforeAll(async () => {
      proxy = await startTestProxy(cluster, {
        shards: 2,
        // The replay-LSN monitor lets reads leave the primary once the replicas have replayed what the session's
        // SET might have written there (read-your-writes).
        general: `read_write_split = "exclude_primary"\nlsn_check_delay = 0\nlsn_check_interval = 100\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tdefro"`,
        extraPgdog: USERS_SHARDING_TOML + shardReplicaEntries(cluster, replicaOf),
      });
    });
    afterAll(async () => {
      await proxy?.close();
    });

    for (const way of WAYS) {
      it(`${way.name}: a plain BEGIN block runs on both replicas and commits one-phase; writes get 25006; READ WRITE and RESET use the primaries`, async () => {
        const client = await readOnlyClient(proxy, way);
        try {
          await waitFor(async () => (await fanOut(client)).every((r) => r), 'reads on both replicas');
          await client.query('BEGIN');
          expect(await fanOut(client)).toEqual([true, true]);
          expect(await mode(client)).toBe('on');
          await client.query('COMMIT'); // one-phase on both replicas (they cannot PREPARE)
          await client.query('BEGIN');
          expect(await codeOf(client, `UPDATE users SET v = 'x' WHERE id = ${SEED_IDS[1]}`)).toBe('25006');
          await client.query('ROLLBACK');
          // Outside a block: a write on both shards (the proxy's own transaction on the primaries) is refused too.
          expect(await codeOf(client, `UPDATE users SET v = 'x' WHERE id < 100`)).toBe('25006');
          await client.query('BEGIN READ WRITE');
          expect(await fanOut(client)).toEqual([false, false]);
          await client.query(`UPDATE users SET v = 'seed' WHERE id < 100`); // both shards: two-phase
          await client.query('COMMIT');
          await client.query('SET default_transaction_read_only = off');
          await client.query('BEGIN');
          expect(await fanOut(client)).toEqual([false, false]);
          expect(await mode(client)).toBe('off');
          await client.query('COMMIT');
          // Outside a block reads go to the replicas again (once they replayed the commit: read-your-writes).
          await waitFor(async () => (await fanOut(client)).every((r) => r), 'reads on both replicas again');
        } finally {
          await client.end();
        }
      });
    }
  });
});

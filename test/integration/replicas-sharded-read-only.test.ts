// READ ONLY transaction blocks on a sharded database (2 shards, a real streaming replica each): BEGIN READ ONLY,
// START TRANSACTION … READ ONLY and SET TRANSACTION READ ONLY blocks run on the replicas (every shard the block
// joins), a write in them fails as PostgreSQL fails it (25006), SERIALIZABLE and READ WRITE blocks stay on the
// primaries, a multi-shard READ ONLY commit is one-phase, and a READ ONLY block left idle past the replica's
// idle_in_transaction_session_timeout does not get the replica banned.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startTestProxy } from '../helpers/proxy.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  connect,
  fanOut,
  hasNoLocalServers,
  SEED_IDS,
  shardReplicaEntries,
  startShardedReplicas,
  waitFor,
} from '../helpers/replicas.js';
import { USERS_SHARDING_TOML } from '../helpers/sharding.js';

describe.skipIf(hasNoLocalServers)('READ ONLY blocks on a sharded database with replicas', () => {
  let cluster: PgCluster;
  const ids = SEED_IDS;
  let proxy: TestProxy;
  let client: pg.Client;
  let admin: pg.Client;

  beforeAll(async () => {
    const started = await startShardedReplicas();
    cluster = started.cluster;
    proxy = await startTestProxy(cluster, {
      shards: 2,
      // The primaries stay readable (include_primary_if_replica_banned): a banned replica shows as a primary's row.
      general: 'read_write_split = "include_primary_if_replica_banned"\nban_timeout = 60000',
      extraPgdog: USERS_SHARDING_TOML + shardReplicaEntries(cluster, started.replicaOf),
    });
    client = await connect(proxy.url);
    admin = await connect(`postgres://admin:admin@127.0.0.1:${proxy.port}/admin`);
  }, 60_000);
  afterAll(async () => {
    await client?.end();
    await admin?.end();
    await proxy?.close();
    await cluster?.stop();
  });

  it('runs BEGIN READ ONLY, START TRANSACTION … READ ONLY and SET TRANSACTION READ ONLY blocks on the replicas', async () => {
    expect(await fanOut(client)).toEqual([true, true]);
    for (const opening of [
      ['BEGIN READ ONLY'],
      ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'],
      ['BEGIN', 'SET TRANSACTION READ ONLY'],
    ]) {
      for (const sql of opening) await client.query(sql);
      // A single-shard read joins one shard on its replica; the fan-out joins the other one there too.
      const one = await client.query<{ r: boolean }>(
        'SELECT pg_is_in_recovery() AS r FROM users WHERE id = $1',
        [ids[1]],
      );
      expect(one.rows).toEqual([{ r: true }]);
      expect(await fanOut(client)).toEqual([true, true]);
      const mode = await client.query<{ m: string }>('SELECT current_setting($1) AS m', [
        'transaction_read_only',
      ]);
      expect(mode.rows).toEqual([{ m: 'on' }]);
      await client.query('COMMIT'); // one-phase on both replicas (they cannot PREPARE)
    }
  });

  it('fails a write inside a READ ONLY block with 25006, as PostgreSQL does', async () => {
    await client.query('BEGIN READ ONLY');
    expect(await fanOut(client)).toEqual([true, true]);
    await expect(client.query(`UPDATE users SET v = 'x' WHERE id = ${ids[0]}`)).rejects.toMatchObject({
      code: '25006',
    });
    await client.query('ROLLBACK');
    const seen = await client.query<{ v: string }>(`SELECT v FROM users WHERE id = ${ids[0]}`);
    expect(seen.rows).toEqual([{ v: 'seed' }]);
  });

  it('keeps READ WRITE, SERIALIZABLE READ ONLY and read-write-again blocks on the primaries', async () => {
    for (const opening of [
      ['BEGIN'],
      ['BEGIN READ WRITE'],
      ['BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY'],
      ['BEGIN READ ONLY', 'SET TRANSACTION READ WRITE'],
    ]) {
      for (const sql of opening) await client.query(sql);
      expect(await fanOut(client)).toEqual([false, false]);
      await client.query('COMMIT');
    }
    // Outside a block, reads go to the replicas again.
    expect(await fanOut(client)).toEqual([true, true]);
  });

  it('a READ ONLY block idle past the replica’s idle_in_transaction_session_timeout does not get the replica banned', async () => {
    const idle = await connect(proxy.url);
    const heard: (Error & { code?: string })[] = [];
    idle.on('error', (err) => heard.push(err));
    await idle.query('BEGIN READ ONLY');
    await idle.query("SET LOCAL idle_in_transaction_session_timeout = '200ms'");
    expect(await fanOut(idle)).toEqual([true, true]);
    // The replicas end the idle transaction (FATAL 25P03): the client hears it, and no replica is banned for it.
    await waitFor(async () => Promise.resolve(heard.length > 0), 'the FATAL of the idle transaction');
    expect(heard[0].code).toBe('25P03');
    await idle.end().catch(() => undefined);
    expect((await admin.query('SHOW BANS')).rows).toEqual([]);
    for (let i = 0; i < 3; i++) expect(await fanOut(client)).toEqual([true, true]);
  });
});

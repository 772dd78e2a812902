// Read/write split on a database with two shards, each with a real streaming replica (pg_basebackup -R): single-shard
// and fan-out reads outside a transaction are spread per shard over its primary and replica, writes, transaction
// blocks and two-phase commits reach only primaries, a replica whose server dies under a query is banned, and a
// replica that goes away loses no later query.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startTestProxy } from '../helpers/proxy.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  connect,
  direct,
  fanOut,
  hasNoLocalServers,
  SEED_IDS,
  shardReplicaEntries,
  startShardedReplicas,
  waitFor,
} from '../helpers/replicas.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

/** Whether a single-shard read of users.id = `id` ran on a replica. */
async function readOne(client: pg.Client, id: number, extended = false): Promise<boolean> {
  const sql = 'SELECT pg_is_in_recovery() AS r FROM users WHERE id = ';
  const result = extended
    ? await client.query<{ r: boolean }>(`${sql}$1`, [id])
    : await client.query<{ r: boolean }>(`${sql}${id}`);
  expect(result.rows).toHaveLength(1);
  return result.rows[0].r;
}

describe.skipIf(hasNoLocalServers)('replicas on a sharded database (2 shards, a replica each)', () => {
  let cluster: PgCluster;
  /** cluster.servers index of each shard's replica. */
  let replicaOf: number[] = [];
  let walDir: string;
  const ids = SEED_IDS;

  beforeAll(async () => {
    ({ cluster, replicaOf } = await startShardedReplicas());
    walDir = mkdtempSync(join(tmpdir(), 'shardgate-replicas-2pc-'));
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
  });

  function startProxy(general: string): Promise<TestProxy> {
    return startTestProxy(cluster, {
      shards: 2,
      general: `${general}\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "trepl"`,
      extraPgdog: USERS_SHARDING_TOML + shardReplicaEntries(cluster, replicaOf),
    });
  }

  it('round_robin with the primary included: single-shard and fan-out reads alternate per shard', async () => {
    const proxy = await startProxy('load_balancing_strategy = "round_robin"');
    const client = await connect(proxy.url);
    try {
      for (const shard of [0, 1]) {
        const simple: boolean[] = [];
        for (let i = 0; i < 6; i++) simple.push(await readOne(client, ids[shard]));
        expect(simple.filter((r) => r)).toHaveLength(3);
        const extended: boolean[] = [];
        for (let i = 0; i < 6; i++) extended.push(await readOne(client, ids[shard], true));
        expect(extended.filter((r) => r)).toHaveLength(3);
      }
      const perShard = [0, 0];
      for (let i = 0; i < 8; i++)
        (await fanOut(client)).forEach((r, shard) => (perShard[shard] += r ? 1 : 0));
      expect(perShard).toEqual([4, 4]);
    } finally {
      await client.end();
      await proxy.close();
    }
  });

  describe('exclude_primary', () => {
    let proxy: TestProxy;
    let client: pg.Client;
    beforeAll(async () => {
      proxy = await startProxy('read_write_split = "exclude_primary"\nban_timeout = 3000');
      client = await connect(proxy.url);
    });
    afterAll(async () => {
      await client?.end();
      await proxy?.close();
    });

    it('sends reads to the replicas; writes, transaction blocks and 2PC to the primaries', async () => {
      expect(await fanOut(client)).toEqual([true, true]);
      expect(await readOne(client, ids[1])).toBe(true);
      // A write on one shard, and a write on both (the proxy's own transaction).
      const { rows } = await client.query<{ r: boolean }>(
        `INSERT INTO users VALUES (${idOn(0, 100)}, 'w') RETURNING pg_is_in_recovery() AS r`,
      );
      expect(rows).toEqual([{ r: false }]);
      const updated = await client.query<{ r: boolean }>(
        "UPDATE users SET v = 'u' WHERE id < 100 RETURNING pg_is_in_recovery() AS r",
      );
      expect(updated.rows).toEqual([{ r: false }, { r: false }]);
      expect(
        (
          await client.query<{ r: boolean }>(
            'SELECT pg_is_in_recovery() AS r FROM users WHERE id < 100 FOR UPDATE',
          )
        ).rows,
      ).toEqual([{ r: false }, { r: false }]);
      // A transaction block: every shard it reaches is a primary, and its commit is two-phase there.
      await client.query('BEGIN');
      expect(await fanOut(client)).toEqual([false, false]);
      await client.query(`INSERT INTO users VALUES (${idOn(0, 200)}, 't'), (${idOn(1, 200)}, 't')`);
      await client.query('COMMIT');
      const written = await Promise.all(
        [0, 1].map(async (shard) => {
          const replica = await direct(cluster, replicaOf[shard]);
          try {
            await waitFor(
              async () =>
                (await replica.query('SELECT 1 FROM users WHERE id = $1', [idOn(shard, 200)])).rowCount === 1,
              `the committed row on shard ${shard}'s replica`,
            );
            return true;
          } finally {
            await replica.end();
          }
        }),
      );
      expect(written).toEqual([true, true]);
      // Back outside the block: reads go to the replicas again.
      expect(await fanOut(client)).toEqual([true, true]);
    });

    it('bans a replica whose server died under a query; later queries succeed, the ban ends after ban_timeout', async () => {
      const victim = await connect(proxy.url);
      const running = victim
        .query(`SELECT pg_sleep(30), pg_is_in_recovery() AS r FROM users WHERE id = ${ids[0]}`)
        .then(
          () => null,
          (err: Error & { code?: string }) => err,
        );
      const replica = await direct(cluster, replicaOf[0]);
      try {
        await waitFor(
          async () =>
            (
              await replica.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
              )
            ).rowCount === 1,
          "the sleeping query on shard 0's replica",
        );
      } finally {
        await replica.end();
      }
      const err = await running;
      expect(err?.code).toBe('57P01'); // the server's own FATAL, passed on
      await victim.end().catch(() => undefined);
      const bannedAt = Date.now();
      // The replica is up, but banned: shard 0 reads go to its primary, shard 1 keeps its replica.
      for (let i = 0; i < 4; i++) expect(await fanOut(client)).toEqual([false, true]);
      expect(Date.now() - bannedAt).toBeLessThan(2_500); // else the ban may have ended already (a very slow machine)
      await new Promise((resolve) => setTimeout(resolve, bannedAt + 3_100 - Date.now()));
      expect(await fanOut(client)).toEqual([true, true]);
    });

    it("loses no later query when one shard's replica goes away", async () => {
      if (cluster.stopOne === undefined) throw new Error('local cluster');
      expect(await fanOut(client)).toEqual([true, true]);
      await cluster.stopOne(replicaOf[1]); // its postmaster's pid, fast shutdown
      for (let i = 0; i < 5; i++) expect(await fanOut(client)).toEqual([true, false]);
      for (let i = 0; i < 3; i++) expect(await readOne(client, ids[1], true)).toBe(false);
      expect(await readOne(client, ids[0])).toBe(true);
    });
  });

  it('session mode keeps the primaries', async () => {
    const proxy = await startProxy('pooler_mode = "session"\nread_write_split = "exclude_primary"');
    const client = await connect(proxy.url);
    try {
      expect(await fanOut(client)).toEqual([false, false]);
      expect(await readOne(client, ids[0])).toBe(false);
    } finally {
      await client.end();
      await proxy.close();
    }
  });
});

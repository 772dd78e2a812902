// SET pgdog.role / SET pgdog.min_lsn inside a transaction block, against real streaming replicas (docs/operations.md
// "Replicas"): kept as PostgreSQL keeps a setting — a SET in a block holds for the session once the block commits and
// is undone when it rolls back (or failed); SET LOCAL ends with its block (and does nothing outside one); RESET is
// undone by a ROLLBACK too. On a one-shard database (the block's requests run on the server it holds) and on a sharded
// one (the block's requests routed one by one). Reads go only to replicas (exclude_primary) unless an override or a
// position sends them to the primary; each replica replays 5 s late, so a fresh position is one it has not replayed.
// Two proxies per cluster: the overrides' one without the replay-LSN monitor (a read sent to the primary by
// pgdog.role counts as a write for read-your-writes, whose hold would outlast the 5 s), the positions' one with it.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import {
  connect,
  databaseEntry,
  direct,
  hasNoLocalServers,
  onReplica,
  waitFor,
} from '../helpers/replicas.js';
import { USERS_SHARDING_TOML } from '../helpers/sharding.js';

const DELAY = { recovery_min_apply_delay: '5s' };
const ROLE_GENERAL = 'read_write_split = "exclude_primary"';
const LSN_GENERAL = `${ROLE_GENERAL}\nlsn_check_delay = 0\nlsn_check_interval = 100`;

/** Each shard's primary (`cluster.servers[shard]`) with `users`, and a replica of it replaying 5 s late. */
async function startCluster(shards: number): Promise<{ cluster: PgCluster; replicaOf: number[] }> {
  const cluster = await startPgCluster({ count: shards, ...APP_SERVER_OPTIONS });
  if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
  for (let shard = 0; shard < shards; shard++) {
    const setup = await direct(cluster, shard);
    await setup.query('CREATE TABLE users (id bigint PRIMARY KEY, v text)');
    await setup.end();
  }
  const replicaOf: number[] = [];
  for (let shard = 0; shard < shards; shard++) replicaOf.push(await cluster.addReplica(shard, DELAY));
  return { cluster, replicaOf };
}

/** A write on every shard's primary (straight to it) and the WAL position it left there, as pgdog.min_lsn takes it. */
async function freshPosition(cluster: PgCluster, shards: number): Promise<string> {
  const parts: string[] = [];
  for (let shard = 0; shard < shards; shard++) {
    const c = await direct(cluster, shard);
    await c.query("INSERT INTO users VALUES ((random() * 1e12)::bigint + 1000000, 'w')");
    const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await c.end();
    parts.push(shards === 1 ? rows[0].lsn : `${shard}:${rows[0].lsn}`);
  }
  return parts.join(',');
}

interface Setup {
  cluster: PgCluster;
  /** Without the replay-LSN monitor. */
  roleProxy: TestProxy;
  /** With it (read-your-writes). */
  lsnProxy: TestProxy;
}

/** Both proxies over `shards` shards, each with a delayed replica. */
async function startSetup(shards: number): Promise<Setup> {
  const { cluster, replicaOf } = await startCluster(shards);
  const replicas = replicaOf
    .map((index, shard) => databaseEntry(cluster, index, 'replica', shards === 1 ? undefined : shard))
    .join('');
  const extraPgdog = shards === 1 ? replicas : USERS_SHARDING_TOML + replicas;
  const roleProxy = await startTestProxy(cluster, { shards, general: ROLE_GENERAL, extraPgdog });
  const lsnProxy = await startTestProxy(cluster, { shards, general: LSN_GENERAL, extraPgdog });
  return { cluster, roleProxy, lsnProxy };
}

/** The behaviours both kinds of database must show (`shards`: 1 or 2). */
function overrideCases(shards: number): void {
  let setup: Setup;
  let client: pg.Client;
  beforeAll(async () => {
    setup = await startSetup(shards);
    client = await connect(setup.roleProxy.url);
    await waitFor(() => onReplica(client), 'a first read on a replica');
  }, 90_000);
  afterAll(async () => {
    await client?.end();
    await setup?.roleProxy.close();
    await setup?.lsnProxy.close();
    await setup?.cluster.stop();
  });

  it('SET pgdog.role in a block, then COMMIT: the session keeps it; RESET in a block is kept by COMMIT too', async () => {
    await client.query('BEGIN');
    await client.query("SET pgdog.role = 'primary'");
    await client.query('COMMIT');
    expect(await onReplica(client)).toBe(false);
    await client.query('BEGIN');
    await client.query('RESET pgdog.role');
    await client.query('COMMIT');
    expect(await onReplica(client)).toBe(true);
  });

  it('SET pgdog.role in a block, then ROLLBACK (or a failed block ended by COMMIT): undone', async () => {
    await client.query('BEGIN');
    await client.query("SET pgdog.role = 'primary'");
    await client.query('ROLLBACK');
    expect(await onReplica(client)).toBe(true);
    await client.query('BEGIN');
    await client.query("SET pgdog.role = 'primary'");
    await expect(client.query('SELECT 1 / 0')).rejects.toThrow(/division by zero/);
    await client.query('COMMIT'); // answered ROLLBACK
    expect(await onReplica(client)).toBe(true);
  });

  it('SET LOCAL pgdog.role ends with its block, and does nothing outside one', async () => {
    await client.query('BEGIN');
    await client.query("SET LOCAL pgdog.role = 'primary'");
    await client.query('COMMIT');
    expect(await onReplica(client)).toBe(true);
    await client.query("SET LOCAL pgdog.role = 'primary'"); // PostgreSQL: a warning, no effect
    expect(await onReplica(client)).toBe(true);
  });

  it('RESET pgdog.role in a block, then ROLLBACK: the override set before the block stays', async () => {
    await client.query("SET pgdog.role = 'primary'");
    await client.query('BEGIN');
    await client.query('RESET pgdog.role');
    await client.query('ROLLBACK');
    expect(await onReplica(client)).toBe(false);
    await client.query('RESET pgdog.role');
    expect(await onReplica(client)).toBe(true);
  });

  it('SET pgdog.min_lsn in a block: required once the block commits; dropped by ROLLBACK, SET LOCAL, RESET', async () => {
    const reader = await connect(setup.lsnProxy.url);
    try {
      await waitFor(() => onReplica(reader), 'a first read on a replica');
      // Each case a position the replicas have not replayed (5 s late): a read held to it goes to the primary.
      let lsn = await freshPosition(setup.cluster, shards);
      await reader.query('BEGIN');
      await reader.query(`SET pgdog.min_lsn = '${lsn}'`);
      await reader.query('ROLLBACK');
      expect(await onReplica(reader)).toBe(true);
      await reader.query('BEGIN');
      await reader.query(`SET LOCAL pgdog.min_lsn = '${lsn}'`);
      await reader.query('COMMIT');
      expect(await onReplica(reader)).toBe(true);
      await reader.query('BEGIN');
      await reader.query(`SET pgdog.min_lsn = '${lsn}'`);
      await reader.query('RESET pgdog.min_lsn');
      await reader.query('COMMIT');
      expect(await onReplica(reader)).toBe(true);
      lsn = await freshPosition(setup.cluster, shards);
      await reader.query('BEGIN');
      await reader.query(`SET pgdog.min_lsn = '${lsn}'`);
      await reader.query('COMMIT');
      expect(await onReplica(reader)).toBe(false);
      // Until the replicas have replayed it (5 s): then the reads are theirs again.
      await waitFor(() => onReplica(reader), 'the replicas replaying the position', 15_000);
    } finally {
      await reader.end();
    }
  });
}

describe.skipIf(hasNoLocalServers)('pgdog.role / pgdog.min_lsn in a block: one shard with a replica', () => {
  overrideCases(1);
});

describe.skipIf(hasNoLocalServers)(
  'pgdog.role / pgdog.min_lsn in a block: 2 shards with a replica each',
  () => {
    overrideCases(2);
  },
);

// Read-your-writes against real streaming replicas whose replay is held back (recovery_min_apply_delay): a client
// reads its own write at once, 30 times out of 30, though every read may go to a replica (exclude_primary); another
// client, which wrote nothing, reads the stale replica meanwhile (the delay is real); once the replica has replayed
// the write, the writer's reads go back to it. On one shard, and per shard on a sharded database; and on another
// connection given the position (SET pgdog.min_lsn, the pgdog_min_lsn comment).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';
const DELAY = { recovery_min_apply_delay: '2s' };
const MONITOR = 'read_write_split = "exclude_primary"\nlsn_check_delay = 0\nlsn_check_interval = 100';

function replicaEntry(cluster: PgCluster, index: number, shard: number): string {
  const s = cluster.servers[index];
  return `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\nrole = "replica"\n`;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The row users.id = `id` as a read through `client` sees it, and whether a replica served it. */
async function readBack(client: pg.Client, id: number): Promise<{ found: boolean; onReplica: boolean }> {
  const { rows } = await client.query<{ v: string | null; r: boolean }>(
    'SELECT (SELECT v FROM users WHERE id = $1) AS v, pg_is_in_recovery() AS r',
    [id],
  );
  return { found: rows[0].v !== null, onReplica: rows[0].r };
}

async function setUp(cluster: PgCluster, shards: number): Promise<void> {
  for (let shard = 0; shard < shards; shard++) {
    const s = cluster.servers[shard];
    const setup = await connect(`postgres://${APP_USER}:${APP_PASSWORD}@${s.host}:${s.port}/${APP_DB}`);
    await setup.query('CREATE TABLE users (id bigint PRIMARY KEY, v text)');
    await setup.end();
  }
}

describe.skipIf(isExternal)('read-your-writes (one shard, a delayed replica)', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    await setUp(cluster, 1);
    const replica = await cluster.addReplica(0, DELAY);
    proxy = await startTestProxy(cluster, {
      shards: 1,
      general: MONITOR,
      extraPgdog: replicaEntry(cluster, replica, 0).replace('shard = 0\n', ''),
    });
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('reads its own write 30 times out of 30; reads go back to the replica once it has replayed', async () => {
    const writer = await connect(proxy.url);
    const other = await connect(proxy.url);
    try {
      await waitFor(async () => (await readBack(writer, 0)).onReplica, 'a first read on the replica');
      let found = 0;
      for (let id = 1; id <= 30; id++) {
        if (id % 2 === 0) await writer.query('INSERT INTO users VALUES ($1, $2)', [id, 'mine']);
        else await writer.query(`BEGIN; INSERT INTO users VALUES (${id}, 'mine'); COMMIT`);
        if ((await readBack(writer, id)).found) found++;
      }
      expect(found).toBe(30);
      // The other session wrote nothing: its read goes to the replica, which has not replayed the writes yet.
      expect(await readBack(other, 30)).toEqual({ found: false, onReplica: true });
      // Replayed (the 2 s delay passed): the writer's reads are the replica's again, and see the row there.
      await waitFor(async () => (await readBack(other, 30)).found, 'the replica replaying the writes');
      await waitFor(
        async () => (await readBack(writer, 30)).onReplica,
        "the writer's reads back on the replica",
        2_000,
      );
      expect(await readBack(writer, 30)).toEqual({ found: true, onReplica: true });
    } finally {
      await writer.end();
      await other.end();
    }
  });

  it('a SET, a SHOW or a block that only sets and reads is not a write: later reads stay on the replica', async () => {
    const setter = await connect(proxy.url);
    const other = await connect(proxy.url);
    try {
      await waitFor(async () => (await readBack(setter, 0)).onReplica, 'a first read on the replica');
      // Another session's write: the primary is ahead of the replica (2 s) from here on.
      await other.query("INSERT INTO users VALUES (101, 'other')");
      await setter.query("SET work_mem = '8MB'");
      expect(await readBack(setter, 101)).toEqual({ found: false, onReplica: true });
      await setter.query('SHOW work_mem');
      expect(await readBack(setter, 101)).toEqual({ found: false, onReplica: true });
      // A block on the primary (not READ ONLY) that sets and reads only, in one Query and request by request.
      await setter.query("BEGIN; SET LOCAL work_mem = '16MB'; SELECT count(*) FROM users; COMMIT");
      expect(await readBack(setter, 101)).toEqual({ found: false, onReplica: true });
      await setter.query('BEGIN');
      await setter.query("SET LOCAL work_mem = '16MB'");
      await setter.query('SELECT count(*) FROM users');
      await setter.query('COMMIT');
      expect(await readBack(setter, 101)).toEqual({ found: false, onReplica: true });
      // A write later in a block whose first requests did not write still counts.
      await setter.query('BEGIN');
      await setter.query("SET LOCAL work_mem = '16MB'");
      await setter.query("INSERT INTO users VALUES (102, 'mine')");
      await setter.query('COMMIT');
      expect((await readBack(setter, 102)).found).toBe(true);
    } finally {
      await setter.end();
      await other.end();
    }
  });
});

describe.skipIf(isExternal)('read-your-writes on another connection: SET pgdog.min_lsn', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    await setUp(cluster, 1);
    const replica = await cluster.addReplica(0, { recovery_min_apply_delay: '5s' });
    proxy = await startTestProxy(cluster, {
      shards: 1,
      general: MONITOR,
      extraPgdog: replicaEntry(cluster, replica, 0).replace('shard = 0\n', ''),
    });
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('a position read after COMMIT on one connection holds reads on another until the replica has it', async () => {
    const [writer, reader, hinted, plain] = await Promise.all([0, 1, 2, 3].map(() => connect(proxy.url)));
    try {
      await waitFor(async () => (await readBack(plain, 0)).onReplica, 'a first read on the replica');
      await writer.query("INSERT INTO users VALUES (1, 'elsewhere')");
      // The WAL position functions are answered by the primary (a standby refuses them).
      const { rows } = await writer.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      const lsn = rows[0].lsn;
      await reader.query(`SET pgdog.min_lsn = '${lsn}'`);
      expect(await readBack(reader, 1)).toEqual({ found: true, onReplica: false });
      const once = await hinted.query<{ v: string | null }>(
        `/* pgdog_min_lsn: ${lsn} */ SELECT (SELECT v FROM users WHERE id = 1) AS v`,
      );
      expect(once.rows).toEqual([{ v: 'elsewhere' }]);
      // Without the position: the replica, which has not replayed the write (5 s behind).
      expect(await readBack(plain, 1)).toEqual({ found: false, onReplica: true });
      await waitFor(
        async () => (await readBack(reader, 1)).onReplica,
        "the reader's reads back on the replica",
      );
      expect(await readBack(reader, 1)).toEqual({ found: true, onReplica: true });
    } finally {
      await Promise.all([writer, reader, hinted, plain].map((c) => c.end()));
    }
  });
});

describe.skipIf(isExternal)('read-your-writes (2 shards, a delayed replica each)', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 2, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    await setUp(cluster, 2);
    const replicas = [await cluster.addReplica(0, DELAY), await cluster.addReplica(1, DELAY)];
    proxy = await startTestProxy(cluster, {
      shards: 2,
      general: MONITOR,
      extraPgdog:
        USERS_SHARDING_TOML + replicaEntry(cluster, replicas[0], 0) + replicaEntry(cluster, replicas[1], 1),
    });
  }, 90_000);
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('holds only the shard written: its reads see the write, the other shard keeps its replica', async () => {
    const writer = await connect(proxy.url);
    try {
      const probe = [idOn(0, 1000), idOn(1, 1000)];
      await waitFor(async () => (await readBack(writer, probe[1])).onReplica, 'a first read on a replica');
      let found = 0;
      for (let i = 1; i <= 30; i++) {
        const id = idOn(0, i * 10);
        await writer.query('INSERT INTO users VALUES ($1, $2)', [id, 'mine']);
        if ((await readBack(writer, id)).found) found++;
        // Shard 1 was not written: its reads stay on its replica.
        expect((await readBack(writer, probe[1])).onReplica).toBe(true);
      }
      expect(found).toBe(30);
      await waitFor(
        async () => (await readBack(writer, probe[0])).onReplica,
        "shard 0's reads back on its replica",
      );
    } finally {
      await writer.end();
    }
  });

  it('a SET is not a write on any shard; a write after a SET in a block still counts on its shards', async () => {
    const setter = await connect(proxy.url);
    const other = await connect(proxy.url);
    try {
      const theirs = [idOn(0, 2000), idOn(1, 2000)];
      await waitFor(
        async () =>
          (await readBack(setter, theirs[0])).onReplica && (await readBack(setter, theirs[1])).onReplica,
        'first reads on the replicas',
      );
      // Another session's writes on both shards: each primary is ahead of its replica (2 s) from here on.
      await other.query('INSERT INTO users VALUES ($1, $2), ($3, $4)', [
        theirs[0],
        'other',
        theirs[1],
        'other',
      ]);
      await setter.query("SET work_mem = '8MB'");
      for (const id of theirs) expect(await readBack(setter, id)).toEqual({ found: false, onReplica: true });
      const mine = [idOn(0, 3000), idOn(1, 3000)];
      await setter.query('BEGIN');
      await setter.query("SET LOCAL work_mem = '16MB'");
      await setter.query('INSERT INTO users VALUES ($1, $2)', [mine[0], 'mine']);
      await setter.query('INSERT INTO users VALUES ($1, $2)', [mine[1], 'mine']);
      await setter.query('COMMIT');
      for (const id of mine) expect((await readBack(setter, id)).found).toBe(true);
    } finally {
      await setter.end();
      await other.end();
    }
  });
});

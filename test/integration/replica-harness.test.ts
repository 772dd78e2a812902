// The replica harness: a streaming replica of a throwaway primary (pg_basebackup -R) is in recovery, replays the
// primary's writes, refuses writes of its own, and can be stopped and started again like any cluster server.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster, PgServer } from '../../src/testing/pg-cluster.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { APP_DB, APP_PASSWORD, APP_SERVER_OPTIONS, APP_USER } from '../helpers/proxy.js';

const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

async function connect(server: PgServer): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Poll `read` until it returns `want` (replay is asynchronous), at most `timeoutMs`. */
async function eventually<T>(read: () => Promise<T>, want: T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let got = await read();
  while (got !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    got = await read();
  }
  return got;
}

describe.skipIf(isExternal)('replica harness', () => {
  let cluster: PgCluster;
  let replicaIndex: number;

  beforeAll(async () => {
    cluster = await startPgCluster({ count: 1, ...APP_SERVER_OPTIONS });
    if (cluster.addReplica === undefined) throw new Error('local clusters have addReplica');
    replicaIndex = await cluster.addReplica(0);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('is a second server, in recovery, with its own pid', async () => {
    expect(replicaIndex).toBe(1);
    const [primary, replica] = cluster.servers;
    expect(replica.port).not.toBe(primary.port);
    expect(replica.pid).not.toBeNull();
    expect(replica.pid).not.toBe(primary.pid);
    const client = await connect(replica);
    try {
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      expect(rows[0].r).toBe(true);
      await expect(client.query('CREATE TABLE nope (id int)')).rejects.toMatchObject({ code: '25006' });
    } finally {
      await client.end();
    }
  });

  it('replays a write made on the primary', async () => {
    const primary = await connect(cluster.servers[0]);
    const replica = await connect(cluster.servers[replicaIndex]);
    try {
      await primary.query('CREATE TABLE replayed (id int PRIMARY KEY, v text)');
      await primary.query("INSERT INTO replayed VALUES (1, 'from the primary')");
      const read = async (): Promise<string | null> => {
        const exists = await replica.query("SELECT to_regclass('replayed') IS NOT NULL AS e");
        if (exists.rows[0].e !== true) return null;
        const res = await replica.query<{ v: string }>('SELECT v FROM replayed WHERE id = 1');
        return res.rows[0]?.v ?? null;
      };
      expect(await eventually(read, 'from the primary')).toBe('from the primary');
      const { rows } = await primary.query<{ n: string }>(
        'SELECT count(*) AS n FROM pg_stat_replication WHERE state = $1',
        ['streaming'],
      );
      expect(rows[0].n).toBe('1');
    } finally {
      await primary.end();
      await replica.end();
    }
  });

  it('stops and starts again, and catches up with writes made meanwhile', async () => {
    if (cluster.stopOne === undefined || cluster.startOne === undefined)
      throw new Error('local clusters have both');
    await cluster.stopOne(replicaIndex);
    const primary = await connect(cluster.servers[0]);
    try {
      await primary.query("INSERT INTO replayed VALUES (2, 'while it was down')");
    } finally {
      await primary.end();
    }
    await cluster.startOne(replicaIndex);
    const replica = await connect(cluster.servers[replicaIndex]);
    try {
      const read = async (): Promise<string | null> =>
        (await replica.query<{ v: string }>('SELECT v FROM replayed WHERE id = 2')).rows[0]?.v ?? null;
      expect(await eventually(read, 'while it was down')).toBe('while it was down');
    } finally {
      await replica.end();
    }
  });
});

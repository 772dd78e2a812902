// The admin console on 2 real PostgreSQL shards (two-phase commit on): login (right and wrong password), every
// command as a typed result set whose values move with traffic, SHOW TRANSACTIONS holding a 2PC commit between its
// phases, errors for unknown commands and the extended protocol, RELOAD (good and broken files), PAUSE/RESUME around
// running transactions, SHUTDOWN, and psql printing a table.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { findPgTool, runTool } from '../helpers/clients/pg-tools.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { errorFields, frame, RawClient } from '../helpers/raw-client.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const psqlPath = findPgTool('psql');
const ADMIN_PASSWORD = 'admin'; // what startTestProxy puts in [admin]

let cluster: PgCluster;
let proxy: TestProxy;
let walDir: string;
let app: pg.Client;
const opened: pg.Client[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The first id >= `from` on `shard`. */
async function adminClient(port = proxy.port, password = ADMIN_PASSWORD, user = 'admin'): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'admin' });
  client.on('error', () => undefined);
  await client.connect();
  opened.push(client);
  return client;
}

async function appClient(applicationName = 'admin-test'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: proxy.url, application_name: applicationName });
  client.on('error', () => undefined);
  await client.connect();
  opened.push(client);
  return client;
}

async function rowsOf(admin: pg.Client, sql: string): Promise<Record<string, unknown>[]> {
  return (await admin.query(sql)).rows as Record<string, unknown>[];
}

/** Column name → type OID of a result. */
function columnTypes(result: pg.QueryResult): Record<string, number> {
  return Object.fromEntries(result.fields.map((f) => [f.name, f.dataTypeID]));
}

const INT8 = 20;
const TEXT = 25;
const NUMERIC = 1700;
const BOOL = 16;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  walDir = mkdtempSync(join(tmpdir(), 'shardgate-admin-'));
  proxy = await startTestProxy(cluster, {
    general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tadmin"`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  app = await appClient();
  await app.query('create table users (id bigint primary key, name text)');
});

afterEach(() => clearFailpoints());

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
  if (walDir) rmSync(walDir, { recursive: true, force: true });
});

describe('admin console login', () => {
  it('accepts the admin user with the admin password', async () => {
    const admin = await adminClient();
    const r = await admin.query('SHOW VERSION');
    expect(r.rows).toEqual([{ version: expect.stringMatching(/^shardgate \d+\.\d+\.\d+/) }]);
    expect(columnTypes(r)).toEqual({ version: TEXT });
  });

  it('refuses a wrong password, and another user, with 28P01', async () => {
    await expect(adminClient(proxy.port, 'wrong')).rejects.toMatchObject({ code: '28P01' });
    await expect(adminClient(proxy.port, ADMIN_PASSWORD, 'app')).rejects.toMatchObject({ code: '28P01' });
  });
});

describe('admin console commands', () => {
  it('SHOW POOLS: one typed row per shard pool, counting server connections', async () => {
    const admin = await adminClient();
    await app.query('select count(*) from users'); // both shards
    const r = await admin.query('SHOW POOLS');
    const types = columnTypes(r);
    expect(types).toMatchObject({
      database: TEXT,
      user: TEXT,
      shard: INT8,
      cl_waiting: INT8,
      sv_active: INT8,
      sv_idle: INT8,
      sv_total: INT8,
      maxwait_ms: NUMERIC,
      paused: BOOL,
    });
    const app0 = r.rows.filter((row) => row.database === 'app' && row.user === 'app');
    expect(app0.map((row) => row.shard)).toEqual(['0', '1']);
    for (const row of app0) {
      expect(Number(row.sv_total)).toBeGreaterThanOrEqual(1);
      expect(row.pool_mode).toBe('transaction');
      expect(row.paused).toBe(false);
      expect(row.pool_size).toBe('10');
    }
  });

  it('SHOW STATS: per shard counts that grow with queries', async () => {
    const admin = await adminClient();
    const stat = async (shard: number): Promise<Record<string, unknown>> => {
      const rows = await rowsOf(admin, 'show stats');
      return rows.find((row) => row.database === 'app' && row.shard === String(shard)) as Record<
        string,
        unknown
      >;
    };
    const r = await admin.query('SHOW STATS');
    expect(columnTypes(r)).toMatchObject({
      total_query_count: INT8,
      total_xact_count: INT8,
      total_received: INT8,
      total_sent: INT8,
      avg_query_time: NUMERIC,
      p99_query_time: NUMERIC,
      total_errors: INT8,
    });
    const before = await stat(0);
    const id = idOn(0, 1);
    for (let i = 0; i < 5; i++) await app.query('select * from users where id = $1', [id]);
    await app.query('select * from users where id = $1 and name = 1', [id]).catch(() => undefined); // 22P02 error
    // node-postgres rejects at the ErrorResponse, before the ReadyForQuery the proxy counts the query at: one more
    // query on the same connection waits for that ReadyForQuery, so the error's count is in before SHOW STATS.
    await app.query('select * from users where id = $1', [id]);
    const after = await stat(0);
    expect(Number(after.total_query_count)).toBeGreaterThanOrEqual(Number(before.total_query_count) + 7);
    expect(Number(after.total_xact_count)).toBeGreaterThanOrEqual(Number(before.total_xact_count) + 7);
    expect(Number(after.total_received)).toBeGreaterThan(Number(before.total_received));
    expect(Number(after.total_sent)).toBeGreaterThan(Number(before.total_sent));
    expect(Number(after.total_errors)).toBe(Number(before.total_errors) + 1);
    expect(Number(after.avg_query_time)).toBeGreaterThan(0);
    expect(Number(after.p99_query_time)).toBeGreaterThanOrEqual(Number(after.p50_query_time));
  });

  it('SHOW CLIENTS: lists connected clients with their state and application name', async () => {
    const other = await appClient('the-other-one');
    await other.query('begin');
    await other.query('select * from users where id = $1', [idOn(1, 1)]);
    const admin = await adminClient();
    const r = await admin.query('SHOW CLIENTS');
    expect(columnTypes(r)).toMatchObject({ id: INT8, user: TEXT, state: TEXT, port: INT8 });
    const row = r.rows.find((c) => c.application_name === 'the-other-one');
    expect(row).toMatchObject({ user: 'app', database: 'app', addr: '127.0.0.1', state: 'active' });
    expect(row?.tx_state).toBe('in transaction');
    expect(row?.servers).toMatch(/^\d+(,\d+)*$/);
    expect(r.rows.some((c) => c.database === 'admin' && c.user === 'admin')).toBe(true);
    // SHOW SERVERS: the connection that client holds is linked to it.
    const servers = await rowsOf(admin, 'SHOW SERVERS');
    const held = servers.filter((s) => String(row?.servers).split(',').includes(String(s.id)));
    expect(held.length).toBeGreaterThanOrEqual(1);
    for (const s of held) {
      expect(s).toMatchObject({ database: 'app', user: 'app', state: 'active', client_id: row?.id });
      expect(Number(s.backend_pid)).toBeGreaterThan(0);
    }
    expect(held.map((s) => s.shard)).toContain('1');
    await other.query('commit');
    const afterCommit = (await rowsOf(admin, 'SHOW CLIENTS')).find((c) => c.id === row?.id);
    expect(afterCommit).toMatchObject({ state: 'idle', tx_state: 'idle', servers: '' });
  });

  it('SHOW DATABASES: one row per shard with its server and connection count', async () => {
    const admin = await adminClient();
    const r = await admin.query('SHOW DATABASES');
    expect(columnTypes(r)).toMatchObject({ name: TEXT, shard: INT8, port: INT8, shards: INT8, paused: BOOL });
    const rows = r.rows.filter((d) => d.name === 'app');
    expect(rows.map((d) => [d.shard, d.port, d.shards, d.role])).toEqual(
      cluster.servers.map((s, i) => [String(i), String(s.port), '2', 'primary']),
    );
    expect(Number(rows[0].current_connections)).toBeGreaterThan(0);
  });

  it('SHOW CONFIG: every setting, passwords redacted', async () => {
    const admin = await adminClient();
    const r = await admin.query('SHOW CONFIG');
    expect(columnTypes(r)).toEqual({ section: TEXT, key: TEXT, value: TEXT, default: TEXT });
    expect(r.rows).toContainEqual({
      section: 'general',
      key: 'two_phase_commit',
      value: 'true',
      default: null,
    });
    expect(r.rows).toContainEqual({
      section: 'admin',
      key: 'password',
      value: '"[redacted]"',
      default: null,
    });
    expect(r.rows).toContainEqual({
      section: 'users[0]',
      key: 'password',
      value: '"[redacted]"',
      default: null,
    });
    expect(r.rows).toContainEqual(expect.objectContaining({ section: 'sharded_tables[0]', key: 'column' }));
    expect(JSON.stringify(r.rows)).not.toContain('app-secret');
  });

  it('SHOW TRANSACTIONS: a two-phase commit held between its phases is listed, then gone', async () => {
    const admin = await adminClient();
    const empty = await admin.query('SHOW TRANSACTIONS');
    expect(columnTypes(empty)).toEqual({
      txid: TEXT,
      state: TEXT,
      database: TEXT,
      user: TEXT,
      age_ms: INT8,
      shards: TEXT,
      retries: INT8,
      last_error: TEXT,
      source: TEXT,
      instance_id: TEXT,
      decision: BOOL,
    });
    expect(empty.rows).toEqual([]);
    let seen: Record<string, unknown>[] = [];
    setFailpoint('after_decision', {
      kind: 'call',
      fn: async () => {
        seen = await rowsOf(admin, 'SHOW TRANSACTIONS');
      },
    });
    await app.query('begin');
    await app.query('insert into users (id, name) values ($1, $2)', [idOn(0, 100), 'a']);
    await app.query('insert into users (id, name) values ($1, $2)', [idOn(1, 100), 'b']);
    await app.query('commit');
    expect(seen).toEqual([
      expect.objectContaining({
        state: 'committing',
        database: 'app',
        user: 'app',
        // atomic_visibility (on with two_phase_commit): the decision shard's branch is prepared too, then committed
        // by COMMIT PREPARED with the others
        shards: '0:decision prepared,1:prepared',
        source: 'proxy',
        decision: true,
      }),
    ]);
    expect(Number(seen[0].age_ms)).toBeGreaterThanOrEqual(0);
    expect(await rowsOf(admin, 'SHOW TRANSACTIONS')).toEqual([]);
  });

  it('takes commands in any case, with extra spaces and semicolons, several per query', async () => {
    const admin = await adminClient();
    expect((await admin.query('  show   version ; ')).rows).toHaveLength(1);
    const results = (await admin.query('SHOW VERSION; show databases;')) as unknown as pg.QueryResult[];
    expect(results).toHaveLength(2);
    expect(results[0].rows[0]).toHaveProperty('version');
  });

  it('answers anything else with an error listing the commands', async () => {
    const admin = await adminClient();
    const err = (await admin.query('SELECT 1').catch((e: unknown) => e)) as pg.DatabaseError;
    expect(err.code).toBe('42601');
    expect(err.message).toContain('unknown admin command: "SELECT 1"');
    expect(err.hint).toContain('SHOW POOLS');
    expect(err.hint).toContain('SHUTDOWN');
    // The connection is still usable.
    expect((await admin.query('SHOW VERSION')).rows).toHaveLength(1);
  });

  it('refuses the extended protocol with 0A000 and recovers at Sync (no hang)', async () => {
    const raw = await RawClient.connect(proxy.port);
    try {
      await raw.login({ user: 'admin', database: 'admin' }, ADMIN_PASSWORD);
      raw.write(
        Buffer.concat([
          frame('P', '\0SHOW POOLS\0\0\0'),
          frame('B', '\0\0\0\0\0\0\0\0'),
          frame('E', '\0\0\0\0\0'),
          frame('S'),
        ]),
      );
      const replies = await raw.readUntil('Z');
      expect(replies.map((m) => m.type)).toEqual(['E', 'Z']);
      expect(errorFields(replies[0].body).C).toBe('0A000');
      expect(errorFields(replies[0].body).M).toContain('simple queries');
      const ok = await raw.query('SHOW VERSION');
      expect(ok.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      raw.close();
    }
  });
});

describe('admin RELOAD', () => {
  it('applies a new pool size; refuses a broken file and keeps running', async () => {
    const admin = await adminClient();
    const poolSize = async (): Promise<string[]> =>
      (await rowsOf(admin, 'SHOW POOLS')).filter((p) => p.user === 'app').map((p) => String(p.pool_size));
    const original = { ...proxy.files };
    try {
      proxy.files.users = original.users.replace(
        'password = "app-secret"\n',
        'password = "app-secret"\npool_size = 3\n',
      );
      const notices: string[] = [];
      admin.on('notice', (n) => notices.push(n.message ?? ''));
      const r = await admin.query('RELOAD');
      expect(r.command).toBe('RELOAD');
      expect(await poolSize()).toEqual(['3', '3']);
      await sleep(20);
      expect(notices.join('\n')).toContain('users."app"@app: pool_size');

      proxy.files.pgdog = original.pgdog.replace('[general]\n', '[general]\ndefault_pool_size = 0\n');
      const err = (await admin.query('RELOAD').catch((e: unknown) => e)) as pg.DatabaseError;
      expect(err.code).toBe('F0000');
      expect(err.message).toContain(
        'configuration reload refused: test-pgdog.toml: general.default_pool_size',
      );
      expect(err.detail).toBe('The running configuration is unchanged.');
      expect(await poolSize()).toEqual(['3', '3']);
      expect((await app.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      proxy.files.pgdog = original.pgdog;
      proxy.files.users = original.users;
      expect(proxy.proxy.reload()).toMatchObject({ ok: true });
    }
  });
});

describe('admin RELOAD of pools in use', () => {
  it('lowers a pool size: idle connections above it close now, busy ones when they come back', async () => {
    const own = await startTestProxy(cluster, {
      shards: 1,
      general: 'min_pool_size = 0',
      userExtra: 'pool_size = 3',
    });
    const admin = await adminClient(own.port);
    const pool = async (): Promise<Record<string, unknown>> =>
      (await rowsOf(admin, 'SHOW POOLS')).find((p) => p.user === 'app') as Record<string, unknown>;
    const clients = await Promise.all([0, 1, 2].map(() => new pg.Client({ connectionString: own.url })));
    try {
      for (const c of clients) {
        await c.connect();
        await c.query('begin');
        await c.query('select 1');
      }
      expect(await pool()).toMatchObject({ sv_total: '3', sv_active: '3', pool_size: '3' });
      own.files.users = own.files.users.replace('pool_size = 3', 'pool_size = 1');
      await admin.query('RELOAD');
      expect(await pool()).toMatchObject({ sv_total: '3', pool_size: '1' }); // nobody is dropped
      for (const c of clients) expect((await c.query('commit')).command).toBe('COMMIT');
      await sleep(50);
      expect(await pool()).toMatchObject({ sv_total: '1', sv_idle: '1' });
      for (const c of clients) expect((await c.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
      await own.close();
    }
  });

  it('moves a shard to another server: new transactions go there, a running one finishes where it is', async () => {
    const own = await startTestProxy(cluster, { shards: 1 });
    const [first, second] = cluster.servers;
    const admin = await adminClient(own.port);
    const running = new pg.Client({ connectionString: own.url });
    const fresh = new pg.Client({ connectionString: own.url });
    const serverPort = async (c: pg.Client): Promise<number> =>
      (await c.query<{ port: number }>('select inet_server_port() as port')).rows[0].port;
    try {
      await running.connect();
      await fresh.connect();
      await running.query('begin');
      expect(await serverPort(running)).toBe(first.port);
      own.files.pgdog = own.files.pgdog.replace(`port = ${first.port}\n`, `port = ${second.port}\n`);
      await admin.query('RELOAD');
      expect(await serverPort(fresh)).toBe(second.port);
      expect(await serverPort(running)).toBe(first.port); // same transaction, same server
      await running.query('commit');
      expect(await serverPort(running)).toBe(second.port);
      const servers = await rowsOf(admin, 'SHOW SERVERS');
      expect(servers.map((s) => Number(s.port))).not.toContain(first.port);
    } finally {
      await running.end().catch(() => undefined);
      await fresh.end().catch(() => undefined);
      await own.close();
    }
  });
});

describe('admin PAUSE / RESUME', () => {
  it('lets a running transaction finish, holds new ones until RESUME', async () => {
    const admin = await adminClient();
    const inTx = await appClient('in-tx');
    const later = await appClient('later');
    const id = idOn(0, 500);
    await inTx.query('begin');
    await inTx.query('insert into users (id, name) values ($1, $2)', [id, 'paused']);

    let isPaused = false;
    const pausing = admin.query('PAUSE').then(() => (isPaused = true));
    await sleep(150);
    expect(isPaused).toBe(false); // waits for the open transaction

    let isLaterDone = false;
    const laterQuery = later.query('select count(*) from users').then(() => (isLaterDone = true));
    await sleep(150);
    expect(isLaterDone).toBe(false); // no server connection while paused

    await inTx.query('commit'); // the running transaction finishes
    await pausing;
    expect(isPaused).toBe(true);
    const pools = await rowsOf(await adminClient(), 'SHOW POOLS');
    expect(pools.filter((p) => p.user === 'app').every((p) => p.paused === true)).toBe(true);
    await sleep(100);
    expect(isLaterDone).toBe(false);

    await admin.query('RESUME');
    await laterQuery;
    expect(isLaterDone).toBe(true);
    expect((await later.query('select name from users where id = $1', [id])).rows).toEqual([
      { name: 'paused' },
    ]);
  });
});

describe.skipIf(psqlPath === null)('admin console with psql', () => {
  it('prints SHOW POOLS as a table', async () => {
    const r = await runTool(psqlPath as string, ['-X', '-c', 'SHOW POOLS'], {
      env: {
        PGHOST: '127.0.0.1',
        PGPORT: String(proxy.port),
        PGUSER: 'admin',
        PGPASSWORD: ADMIN_PASSWORD,
        PGDATABASE: 'admin',
      },
      timeoutMs: 20_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\s*id\s*\|\s*database\s*\|\s*user\s*\|\s*shard\s*\|\s*role\s*\|/);
    expect(lines[1]).toMatch(/^-+\+-+/);
    expect(r.stdout).toMatch(/\(\d+ rows?\)/);
    expect(r.stdout).toMatch(/ app\s+\| app\s+\|\s+0 \|/);
  });
});

describe('admin SHUTDOWN', () => {
  it('stops the proxy', async () => {
    const own = await startTestProxy(cluster, { shards: 1 });
    const admin = await adminClient(own.port);
    const r = await admin.query('SHUTDOWN');
    expect(r.command).toBe('SHUTDOWN');
    await expect(own.proxy.stopped).resolves.toEqual({ isClean: true });
    const late = new pg.Client({
      host: '127.0.0.1',
      port: own.port,
      user: 'app',
      password: 'x',
      database: 'app',
    });
    late.on('error', () => undefined);
    await expect(late.connect()).rejects.toThrow(/ECONNREFUSED/);
  });
});

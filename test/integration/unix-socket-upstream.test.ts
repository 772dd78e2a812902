// Unix-socket upstreams: two real PostgreSQL servers listening on a socket directory of this test's own, and proxies
// whose [[databases]] host is that directory. Queries, a cross-shard two-phase commit, and the recovery of another
// proxy's commit all run over the sockets (each backend of the proxies has no client address: not TCP).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serverIdentity } from '../../src/testing/local-process.js';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { hasNoLocalServers } from '../helpers/replicas.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

// Servers given by address (SHARDGATE_TEST_PG) keep their own unix_socket_directories: this needs servers it starts.
describe.skipIf(hasNoLocalServers)('Unix-socket upstreams (host = a socket directory)', () => {
  let socketDir: string;
  let cluster: PgCluster;
  let direct: pg.Client[];
  let a: TestProxy;
  let b: TestProxy;
  const opened: pg.Client[] = [];

  function settings(instanceId: string): string {
    // Periodic recovery far away: only RECOVER settles anything, so the test sees who did it.
    return (
      `two_phase_commit = true\ninstance_id = "${instanceId}"\n` +
      'two_phase_commit_orphan_timeout = 5000\ntwo_phase_commit_recovery_interval = 600000'
    );
  }

  async function connect(url: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => undefined);
    await c.connect();
    opened.push(c);
    return c;
  }

  async function admin(proxy: TestProxy): Promise<pg.Client> {
    return connect(`postgres://admin:admin@127.0.0.1:${proxy.port}/admin`);
  }

  /** The app user's backends on each server other than our direct clients: [over the socket, over TCP]. */
  async function appBackends(): Promise<{ unix: number; tcp: number }[]> {
    return Promise.all(
      direct.map(async (d) => {
        const r = await d.query<{ unix: number; tcp: number }>(
          `select count(*) filter (where client_port = -1)::int as unix, ` +
            `count(*) filter (where client_port <> -1)::int as tcp ` +
            `from pg_stat_activity where usename = 'app' and pid <> pg_backend_pid()`,
        );
        return r.rows[0];
      }),
    );
  }

  async function prepared(): Promise<number[]> {
    return Promise.all(
      direct.map(async (d) => (await d.query('select 1 from pg_prepared_xacts')).rowCount ?? 0),
    );
  }

  async function rows(ids: number[]): Promise<number> {
    let n = 0;
    for (const d of direct)
      n += (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0;
    return n;
  }

  beforeAll(async () => {
    // Short (a socket path has at most 107 bytes) and writable by the OS user the servers run as.
    socketDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-sock-'));
    const identity = serverIdentity();
    if (identity !== null) fs.chownSync(socketDir, identity.uid, identity.gid);
    cluster = await testServers(2, {
      ...APP_SERVER_OPTIONS,
      extraConf: { unix_socket_directories: socketDir },
    });
    direct = await directShardClients(cluster); // over TCP
    for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
    const onSockets = { hostOf: () => socketDir, extraPgdog: USERS_SHARDING_TOML };
    a = await startTestProxy(cluster, { ...onSockets, general: settings('unix_a') });
    b = await startTestProxy(cluster, { ...onSockets, general: settings('unix_b') });
  });

  afterEach(() => clearFailpoints());

  afterAll(async () => {
    for (const c of opened) await c.end().catch(() => undefined);
    await a?.close();
    await b?.close();
    for (const d of direct ?? []) await d.end().catch(() => undefined);
    await cluster?.stop();
    if (socketDir !== undefined) fs.rmSync(socketDir, { recursive: true, force: true });
  });

  it('the servers listen on the socket directory', () => {
    for (const s of cluster.servers)
      expect(fs.existsSync(path.join(socketDir, `.s.PGSQL.${s.port}`))).toBe(true);
  });

  it('runs single-shard and all-shard queries, extended protocol included, over the sockets', async () => {
    const c = await connect(a.url);
    const ids = [idOn(0, 1), idOn(1, 1)];
    await c.query('insert into users (id, name) values ($1, $2)', [ids[0], 'zero']);
    await c.query(`insert into users (id, name) values (${ids[1]}, 'one')`);
    expect((await c.query('select name from users where id = $1', [ids[1]])).rows).toEqual([{ name: 'one' }]);
    expect((await c.query('select count(*)::int as n from users')).rows[0].n).toBe(2);
    const perShard = await appBackends();
    for (const shard of perShard) {
      expect(shard.unix).toBeGreaterThan(0);
      expect(shard.tcp).toBe(0);
    }
  });

  it('SHOW SERVERS lists the socket directory as the host', async () => {
    const console = await admin(a);
    const servers = (await console.query('SHOW SERVERS')).rows as { host: string; port: number }[];
    expect(servers.length).toBeGreaterThan(0);
    for (const s of servers) expect(s.host).toBe(socketDir);
  });

  it('commits a cross-shard transaction with two-phase commit over the sockets', async () => {
    const c = await connect(a.url);
    const ids = [idOn(0, 100), idOn(1, 100)];
    await c.query('begin');
    await c.query('insert into users (id, name) values ($1, $2), ($3, $4)', [ids[0], 'x', ids[1], 'y']);
    await c.query('commit');
    expect(await rows(ids)).toBe(2);
    expect(await prepared()).toEqual([0, 0]);
    for (const shard of await appBackends()) expect(shard.tcp).toBe(0);
  });

  it("proxy B recovers proxy A's stalled commit over the sockets", async () => {
    const ids = [idOn(0, 200), idOn(1, 200)];
    let release = (): void => undefined;
    let reached = (): void => undefined;
    const isReached = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    setFailpoint('after_decision', {
      kind: 'call',
      fn: async () => {
        reached();
        await released;
      },
    });
    const c = await connect(a.url);
    await c.query('begin');
    await c.query('insert into users (id, name) values ($1, $2), ($3, $4)', [ids[0], 'x', ids[1], 'y']);
    const commit = c.query('commit').then(
      () => null,
      (e: Error) => e,
    );
    await isReached;
    expect((await prepared()).reduce((x, y) => x + y)).toBeGreaterThan(0);
    const console = await admin(b);
    const settled = (await console.query('RECOVER')).rows[0] as { committed: string };
    expect(Number(settled.committed)).toBeGreaterThan(0);
    expect(await prepared()).toEqual([0, 0]);
    expect(await rows(ids)).toBe(2);
    release();
    expect(await commit).toBeNull();
    for (const shard of await appBackends()) expect(shard.tcp).toBe(0);
  });
});

// shardgate as a real process on 2 PostgreSQL shards: SIGHUP with a new password and pool size while clients run
// queries (none dropped; new password in, old out; pools resized), a broken file on SIGHUP (refused, still serving),
// SIGTERM with a two-shard transaction open (it commits, new clients get 57P03, idle ones 57P01, exit code 0), and a
// transaction that outlives shutdown_timeout (disconnected, rolled back, exit code 0).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { ProxyProcess } from '../helpers/proxy-process.js';
import { APP_DB, APP_PASSWORD, APP_SERVER_OPTIONS, APP_USER } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const NEW_PASSWORD = 'rotated-secret';

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
let proxy: ProxyProcess | null = null;
const opened: pg.Client[] = [];

function users(password: string, poolSize: number): string {
  // server_password stays the servers' own: only the password clients use changes.
  return `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${password}"\nserver_password = "${APP_PASSWORD}"\npool_size = ${poolSize}\n`;
}

interface Tracked {
  client: pg.Client;
  errors: (Error & { code?: string })[];
  ended: boolean;
}

async function connect(port: number, password: string): Promise<Tracked> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: APP_USER, password, database: APP_DB });
  const t: Tracked = { client, errors: [], ended: false };
  client.on('error', (e) => t.errors.push(e));
  client.on('end', () => (t.ended = true));
  await client.connect();
  opened.push(client);
  return t;
}

async function admin(port: number, sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'admin', password: 'admin', database: 'admin' });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

const GENERAL = 'log_level = "info"\ntwo_phase_commit = true\ninstance_id = "treload"';

async function startProxy(extraGeneral: string, userText: string): Promise<ProxyProcess> {
  const opts = {
    dir,
    general: `${GENERAL}\ntwo_phase_commit_wal_dir = "${path.join(dir, 'wal')}"\n${extraGeneral}`,
    extraPgdog: USERS_SHARDING_TOML,
    users: userText,
  };
  const p = await ProxyProcess.create(cluster, opts);
  await p.start();
  proxy = p;
  return p;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
});

afterEach(async () => {
  for (const c of opened.splice(0)) await c.end().catch(() => undefined);
  if (proxy?.isRunning) await proxy.kill9();
  proxy = null;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
});

describe('SIGHUP', () => {
  it('applies a new password and pool size while clients keep running queries', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-reload-'));
    const p = await startProxy('', users(APP_PASSWORD, 2));
    const workers = await Promise.all([0, 1, 2, 3].map(() => connect(p.port, APP_PASSWORD)));
    let isRunning = true;
    const done = [0, 0, 0, 0];
    const failures: unknown[] = [];
    const loops = workers.map(async (w, i) => {
      while (isRunning) {
        try {
          await w.client.query('select pg_sleep(0.002), $1::bigint as id', [idOn(i % 2, 1)]);
          done[i]++;
        } catch (err) {
          failures.push(err);
          return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    const beforeReload = [...done];

    p.writeFiles({
      general: `${GENERAL}\ntwo_phase_commit_wal_dir = "${path.join(dir, 'wal')}"`,
      extraPgdog: USERS_SHARDING_TOML,
      users: users(NEW_PASSWORD, 4),
    });
    const from = p.output.length;
    p.signal('SIGHUP');
    const line = await p.waitForLog(/^configuration reloaded/, 10_000, from);
    expect(line.changed).toEqual(['users."app"@app: password, pool_size']);
    expect(p.output.slice(from)).not.toContain(NEW_PASSWORD); // values are never logged

    await new Promise((r) => setTimeout(r, 300));
    isRunning = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    for (const [i, w] of workers.entries()) {
      expect(w.errors).toEqual([]);
      expect(w.ended).toBe(false);
      expect(done[i]).toBeGreaterThan(beforeReload[i]); // kept working after the reload
    }

    await expect(connect(p.port, APP_PASSWORD)).rejects.toMatchObject({ code: '28P01' });
    const fresh = await connect(p.port, NEW_PASSWORD);
    expect((await fresh.client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    const pools = (await admin(p.port, 'SHOW POOLS')).filter((r) => r.user === APP_USER);
    expect(pools.map((r) => r.pool_size)).toEqual(['4', '4']);
  });

  it('refuses a configuration that fails validation and keeps serving with the old one', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-reload-'));
    const p = await startProxy('', users(APP_PASSWORD, 3));
    const before = await connect(p.port, APP_PASSWORD);
    p.writeFiles({
      general: `${GENERAL}\ncheckout_timeout = "5s"`,
      extraPgdog: USERS_SHARDING_TOML,
      users: users(NEW_PASSWORD, 9),
    });
    const from = p.output.length;
    p.signal('SIGHUP');
    const line = await p.waitForLog(/^configuration reload refused/, 10_000, from);
    expect(line.err).toMatch(
      /pgdog\.toml: general\.checkout_timeout: got string "5s", expected integer milliseconds/,
    );
    expect(p.output.slice(from)).not.toMatch(/configuration reloaded/);

    expect((await before.client.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    const again = await connect(p.port, APP_PASSWORD); // the old password still works
    expect((await again.client.query('select 3 as three')).rows).toEqual([{ three: 3 }]);
    await expect(connect(p.port, NEW_PASSWORD)).rejects.toMatchObject({ code: '28P01' });
    const pools = (await admin(p.port, 'SHOW POOLS')).filter((r) => r.user === APP_USER);
    expect(pools.map((r) => r.pool_size)).toEqual(['3', '3']);
  });
});

describe('SIGTERM', () => {
  it('lets an open two-shard transaction commit, refuses new clients, then exits 0', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-shutdown-'));
    const p = await startProxy('shutdown_timeout = 20_000', users(APP_PASSWORD, 4));
    const inTx = await connect(p.port, APP_PASSWORD);
    const idle = await connect(p.port, APP_PASSWORD);
    const a = idOn(0, 2000);
    const b = idOn(1, 2000);
    await inTx.client.query('begin');
    await inTx.client.query('insert into users (id, name) values ($1, $2)', [a, 'sigterm-a']);

    const from = p.output.length;
    p.signal('SIGTERM');
    await p.waitForLog(/^shutting down: refusing new clients/, 10_000, from);

    // A new client is refused with a clear error; an idle one is disconnected.
    await expect(connect(p.port, APP_PASSWORD)).rejects.toMatchObject({ code: '57P03' });
    const deadline = Date.now() + 5_000;
    while (!idle.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(idle.ended).toBe(true);
    expect(idle.errors[0]?.code).toBe('57P01'); // then node-postgres' own "terminated unexpectedly"

    // The running transaction goes on, reaches a second shard and commits (two-phase).
    await inTx.client.query('insert into users (id, name) values ($1, $2)', [b, 'sigterm-b']);
    const t0 = Date.now();
    expect((await inTx.client.query('commit')).command).toBe('COMMIT');

    expect(await p.waitForExit()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000); // did not wait out shutdown_timeout
    expect((await direct[0].query('select name from users where id = $1', [a])).rows).toEqual([
      { name: 'sigterm-a' },
    ]);
    expect((await direct[1].query('select name from users where id = $1', [b])).rows).toEqual([
      { name: 'sigterm-b' },
    ]);
    for (const d of direct) expect((await d.query('select gid from pg_prepared_xacts')).rows).toEqual([]);
    expect(p.logLines(/^shardgate stopped/)).toHaveLength(1);
  });

  it('disconnects a transaction still open at shutdown_timeout (rolled back), then exits 0', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-shutdown-'));
    const p = await startProxy('shutdown_timeout = 500', users(APP_PASSWORD, 4));
    const inTx = await connect(p.port, APP_PASSWORD);
    const a = idOn(0, 3000);
    await inTx.client.query('begin');
    await inTx.client.query('insert into users (id, name) values ($1, $2)', [a, 'too-slow']);
    const t0 = Date.now();
    p.signal('SIGTERM');
    expect(await p.waitForExit()).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(inTx.errors[0]?.code).toBe('57P01');
    expect(p.logLines(/shutdown_timeout reached/)).toHaveLength(1);
    expect((await direct[0].query('select 1 from users where id = $1', [a])).rows).toEqual([]);
  });
});

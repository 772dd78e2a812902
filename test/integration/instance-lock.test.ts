// The instance lock on 2 real PostgreSQL shards (proxies in-process): a second proxy with the same instance_id
// refuses to start, naming the id and the shard, and starts once the first stopped; a lock connection that drops is
// taken again; a lock taken meanwhile by someone else refuses two-phase commits (rolled back everywhere) until it is
// released; a shard down at start-up is warned about and locked once it is back. Recovery of the former default id's
// prepared transactions when that id is ambiguous (a host name cut to 32 characters): not at start-up if young.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { silentLogger } from '../../src/logging/logger.js';
import { startProxy } from '../../src/proxy.js';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { instanceLockKeys } from '../../src/txn/instance-lock.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
let walCount = 0;

/** `[general]` lines for a 2PC proxy with `instanceId` and a decision log of its own. */
function general(instanceId: string, extra = ''): string {
  const wal = join(dir, `wal-${walCount++}`);
  return `two_phase_commit = true\ninstance_id = "${instanceId}"\ntwo_phase_commit_wal_dir = "${wal}"\n${extra}`;
}

function start(instanceId: string, extra = ''): Promise<TestProxy> {
  return startTestProxy(cluster, { general: general(instanceId, extra), extraPgdog: USERS_SHARDING_TOML });
}

/** Backend pids (with application_name) holding `instanceId`'s lock on `shard`. */
async function holders(shard: number, instanceId: string): Promise<{ pid: number; app: string }[]> {
  const [k1, k2] = instanceLockKeys(instanceId);
  const r = await direct[shard].query<{ pid: number; app: string }>(
    `select l.pid, a.application_name as app from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted and l.classid = $1::oid and l.objid = $2::oid and l.objsubid = 2`,
    [k1, k2],
  );
  return r.rows;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function prepared(): Promise<string[][]> {
  return Promise.all(
    direct.map(async (d) =>
      (await d.query<{ gid: string }>('select gid from pg_prepared_xacts')).rows.map((r) => r.gid),
    ),
  );
}

async function rows(ids: number[]): Promise<number> {
  let n = 0;
  for (const d of direct) n += (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0;
  return n;
}

/** BEGIN, a row on each shard, COMMIT through `proxy`: a two-phase commit. */
async function commitOnBoth(proxy: TestProxy, ids: [number, number]): Promise<Error | null> {
  const client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  try {
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2), ($3, $4)', [ids[0], 'a', ids[1], 'b']);
    return await client.query('commit').then(
      () => null,
      (e: Error) => e,
    );
  } finally {
    await client.end();
  }
}

/** A Config (as parseConfig makes it) with `servers` as the shards of `app`, for proxies started with startProxy. */
function configFor(servers: readonly { host: string; port: number }[], generalLines: string): Config {
  const dbs = servers
    .map(
      (s, shard) =>
        `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\n`,
    )
    .join('\n');
  const pgdog =
    `[general]\nhost = "127.0.0.1"\nport = 0\nlog_level = "warn"\n${generalLines}\n[admin]\npassword = "admin"\n\n` +
    `${dbs}\n${USERS_SHARDING_TOML}`;
  const users = `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${APP_PASSWORD}"\n`;
  return parseConfig(pgdog, users, { configPath: 'pgdog.toml', usersPath: 'users.toml' }).config;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
  dir = mkdtempSync(join(tmpdir(), 'shardgate-lock-'));
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('instance lock', () => {
  it('refuses a second live proxy with the same instance_id, naming the id and shard; starts it once the first stopped', async () => {
    const first = await start('dup');
    try {
      for (const shard of [0, 1])
        expect(await holders(shard, 'dup')).toEqual([
          { pid: expect.any(Number), app: expect.stringMatching(/^shardgate-lock:dup:[0-9a-f]{5}$/) },
        ]);
      const { pid: firstPid, app: firstApp } = (await holders(0, 'dup'))[0];
      const err = await start('dup').then(
        (p) => p.close().then(() => null),
        (e: Error) => e,
      );
      expect(err?.name).toBe('InstanceIdInUseError');
      expect(err?.message).toContain(
        `instance_id "dup" is in use by another live shardgate: shard 0 of database "${APP_DB}"`,
      );
      expect(err?.message).toContain(`backend pid ${firstPid} (application_name "shardgate-lock:dup:`);
      // The refused proxy left nothing behind: the first one still holds both locks alone, and still commits.
      for (const shard of [0, 1])
        expect(await holders(shard, 'dup')).toEqual([{ pid: expect.any(Number), app: firstApp }]);
      expect(await commitOnBoth(first, [idOn(0, 100), idOn(1, 100)])).toBeNull();

      // Another instance id starts alongside.
      const other = await start('other');
      expect((await holders(1, 'other')).length).toBe(1);
      await other.close();
    } finally {
      await first.close();
    }
    // Stopped: its locks are released, and a new proxy with the same id starts.
    await waitFor(async () => (await holders(0, 'dup')).length === 0, 5_000, 'the lock to be released');
    const second = await start('dup');
    try {
      expect((await holders(0, 'dup')).length).toBe(1);
      expect(await commitOnBoth(second, [idOn(0, 200), idOn(1, 200)])).toBeNull();
    } finally {
      await second.close();
    }
  });

  it('takes the lock again when its connection drops', async () => {
    const proxy = await start('retake');
    try {
      const [before] = await holders(1, 'retake');
      await direct[1].query('select pg_terminate_backend($1)', [before.pid]);
      await waitFor(
        async () => (await holders(1, 'retake')).some((h) => h.pid !== before.pid),
        5_000,
        'the lock to be taken again',
      );
      expect(proxy.proxy.txn?.refusal).toBeNull();
      expect(await commitOnBoth(proxy, [idOn(0, 300), idOn(1, 300)])).toBeNull();
    } finally {
      await proxy.close();
    }
  });

  it('refuses two-phase commits while someone else holds the lock it lost, and accepts them once it is back', async () => {
    const proxy = await start('stolen');
    const thief = (await directShardClients(cluster))[1];
    try {
      const [k1, k2] = instanceLockKeys('stolen');
      const [before] = await holders(1, 'stolen');
      // The thief queues for the lock, then the proxy's session ends: PostgreSQL hands the lock to the thief.
      const stolen = thief.query('select pg_advisory_lock($1, $2)', [k1, k2]);
      await waitFor(
        async () =>
          (await direct[1].query(`select 1 from pg_locks where locktype = 'advisory' and not granted`))
            .rowCount === 1,
        5_000,
        'the thief to wait for the lock',
      );
      await direct[1].query('select pg_terminate_backend($1)', [before.pid]);
      await stolen;
      const txn = proxy.proxy.txn!;
      await waitFor(async () => txn.refusal !== null, 5_000, 'commits to be refused');
      expect(txn.refusal).toMatch(
        /instance_id "stolen" is in use by another live shardgate: shard 1 of database "app"/,
      );

      const ids: [number, number] = [idOn(0, 400), idOn(1, 400)];
      const err = await commitOnBoth(proxy, ids);
      expect(err?.message).toMatch(/transaction was rolled back/);
      expect((err as Error & { code?: string }).code).toBe('55000');
      expect((err as Error & { detail?: string }).detail).toMatch(
        /two-phase commits are refused: instance_id "stolen"/,
      );
      expect(await rows(ids)).toBe(0);
      expect(await prepared()).toEqual([[], []]);
      // Work on one shard is not affected.
      const client = new pg.Client({ connectionString: proxy.url });
      await client.connect();
      await client.query('insert into users (id, name) values ($1, $2)', [idOn(0, 500), 'one shard']);
      await client.end();
      expect(await rows([idOn(0, 500)])).toBe(1);

      await thief.query('select pg_advisory_unlock($1, $2)', [k1, k2]);
      await waitFor(async () => txn.refusal === null, 10_000, 'commits to be accepted again');
      expect((await holders(1, 'stolen')).map((h) => h.app)).toEqual([before.app]);
      expect(await commitOnBoth(proxy, [idOn(0, 600), idOn(1, 600)])).toBeNull();
    } finally {
      await thief.end().catch(() => undefined);
      await proxy.close();
    }
  });

  it('starts with a shard down (warned about, as the max_prepared_transactions check) and locks it once it is back', async () => {
    const stopOne = cluster.stopOne?.bind(cluster);
    const startOne = cluster.startOne?.bind(cluster);
    if (stopOne === undefined || startOne === undefined) return; // external servers: cannot stop them
    await direct[1].end();
    await stopOne(1);
    let proxy: TestProxy | null = null;
    try {
      proxy = await start('late');
      expect(await holders(0, 'late')).toHaveLength(1);
    } finally {
      await startOne(1);
      direct[1] = (await directShardClients(cluster))[1];
    }
    try {
      await waitFor(async () => (await holders(1, 'late')).length === 1, 15_000, 'the lock on shard 1');
    } finally {
      await proxy?.close();
    }
  });

  it('locks a server database once when two shards reach it under different host spellings (not refused as a twin)', async () => {
    const s = cluster.servers[0];
    const config = configFor([s, { host: 'localhost', port: s.port }], general('spelled'));
    const proxy = await startProxy(config, silentLogger());
    try {
      expect(await holders(0, 'spelled')).toHaveLength(1);
      expect(proxy.txn?.refusal).toBeNull();
    } finally {
      await proxy.close();
    }
  });
});

describe('recovery of the former default instance id', () => {
  it('when ambiguous (host name cut to 32 characters): a young undecided branch is left at start-up, rolled back after the orphan timeout', async () => {
    const formerId = 'orders_api_shardgate_proxy_7c9d8_6432'; // what the pods of one Deployment all had
    const ids = [idOn(0, 700), idOn(1, 700)];
    for (const [shard, d] of direct.entries()) {
      await d.query('begin');
      await d.query('insert into users (id, name) values ($1, $2)', [ids[shard], 'former']);
      await d.query(`prepare transaction 'sg_${formerId}_1x1_${shard}'`);
    }
    const config = configFor(
      cluster.servers,
      general('new_id', 'two_phase_commit_orphan_timeout = 3000\ntwo_phase_commit_recovery_interval = 200'),
    );
    // As load.ts sets them for a pod named orders-api-shardgate-proxy-7c9d8f6b5d-x8k2p without instance_id.
    config.general.formerInstanceId = formerId;
    config.general.isFormerInstanceIdAmbiguous = true;
    const startedAt = Date.now();
    const proxy = await startProxy(config, silentLogger());
    try {
      // Another pod may still be committing it: not rolled back at start-up.
      expect((await prepared()).map((g) => g.length)).toEqual([1, 1]);
      await waitFor(
        async () => (await prepared()).flat().length === 0,
        15_000,
        'the orphan timeout rollback',
      );
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(2_000);
      expect(await rows(ids)).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

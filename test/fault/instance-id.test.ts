// shardgate as child processes (the real CLI) on 2 real PostgreSQL shards: a second proxy with the same instance_id
// exits 1 with an error naming the id and the shard; after the first is kill -9'd (PostgreSQL ends its session and
// releases the lock) the second starts. An upgrade orphans nothing: prepared transactions left under the former
// default instance id (host name cut to 32 characters + port) are committed when the decision log has their COMMIT
// record and rolled back when not, by a proxy started with the new default id.
// Each test starts two or three proxy processes: 90 s each, since a Node start-up under load can take 10 s.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formerDefaultInstanceId } from '../../src/config/instance-id.js';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { DecisionLog } from '../../src/txn/log/decision-log.js';
import { instanceLockKeys } from '../../src/txn/instance-lock.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, APP_USER } from '../helpers/proxy.js';
import { ProxyProcess } from '../helpers/proxy-process.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
const running: ProxyProcess[] = [];

async function proxyIn(name: string, generalLines: string): Promise<ProxyProcess> {
  const sub = path.join(dir, name);
  fs.mkdirSync(sub);
  const proxy = await ProxyProcess.create(cluster, {
    dir: sub,
    general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${path.join(sub, 'wal')}"\n${generalLines}`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  running.push(proxy);
  return proxy;
}

async function lockHolders(instanceId: string): Promise<number> {
  const [k1, k2] = instanceLockKeys(instanceId);
  let n = 0;
  for (const d of direct) {
    const r = await d.query(
      `select 1 from pg_locks where locktype = 'advisory' and granted and classid = $1::oid and objid = $2::oid and objsubid = 2`,
      [k1, k2],
    );
    n += r.rowCount ?? 0;
  }
  return n;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function preparedGids(): Promise<string[][]> {
  return Promise.all(
    direct.map(async (d) =>
      (await d.query<{ gid: string }>('select gid from pg_prepared_xacts order by gid')).rows.map(
        (r) => r.gid,
      ),
    ),
  );
}

async function rows(ids: number[]): Promise<number> {
  let n = 0;
  for (const d of direct) n += (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0;
  return n;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-instance-id-'));
});

afterAll(async () => {
  for (const p of running) if (p.isRunning) await p.kill9();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a second live proxy with the same instance_id', () => {
  it('exits 1 naming the id and the shard; starts once the first was kill -9d', async () => {
    const first = await proxyIn('first', 'instance_id = "twin"');
    const second = await proxyIn('second', 'instance_id = "twin"');
    await first.start();
    expect(await lockHolders('twin')).toBe(2);

    await expect(second.start()).rejects.toThrow(/exited during startup/);
    expect(await second.waitForExit()).toBe(1);
    expect(second.output).toMatch(
      /shardgate: cannot start: instance_id "twin" is in use by another live shardgate: shard 0 of database "app" \(127\.0\.0\.1:\d+\/app\) holds its lock for backend pid \d+/,
    );
    const [line] = second.logLines(/instance_id is in use by another live shardgate: refusing to start/);
    expect(line).toMatchObject({ level: 50, instanceId: 'twin', database: APP_DB, shard: 0 });
    expect(first.isRunning).toBe(true);

    await first.kill9();
    // The server notices the closed socket and ends the session: the lock goes with it.
    await waitFor(
      async () => (await lockHolders('twin')) === 0,
      10_000,
      'the dead proxy’s locks to be released',
    );
    await second.start();
    expect(await lockHolders('twin')).toBe(2);
    await second.stop();
  }, 90_000);
});

describe('upgrade from the former default instance id', () => {
  it('commits its decided prepared transactions and rolls back the undecided ones, started with the new default', async () => {
    const proxy = await proxyIn('upgrade', '');
    const former = formerDefaultInstanceId(os.hostname(), proxy.port);
    if (former.isAmbiguous) {
      // A host name over 32 characters: its former id may be another host's, so undecided branches wait for the
      // orphan timeout even at start-up (test/integration/instance-lock.test.ts); make that timeout nothing here.
      proxy.writeFiles({
        general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${path.join(dir, 'upgrade', 'wal')}"\ntwo_phase_commit_orphan_timeout = 1`,
        extraPgdog: USERS_SHARDING_TOML,
      });
    }
    const decided = [idOn(0, 100), idOn(1, 100)];
    const undecided = [idOn(0, 200), idOn(1, 200)];
    const gid = (txid: string, shard: number): string => `sg_${former.id}_${txid}_${shard}`;
    for (const [shard, d] of direct.entries()) {
      for (const [txid, ids] of [
        ['1x1', decided],
        ['1x2', undecided],
      ] as const) {
        await d.query('begin');
        await d.query('insert into users (id, name) values ($1, $2)', [ids[shard], txid]);
        await d.query(`prepare transaction '${gid(txid, shard)}'`);
      }
    }
    // The old version decided 1x1 (COMMIT record in its decision log) and died before COMMIT PREPARED.
    const log = await DecisionLog.open({
      dir: path.join(dir, 'upgrade', 'wal'),
      segmentSizeBytes: 16 * 1024 * 1024,
      fsyncIntervalMs: 0,
    });
    await log.appendCommit({
      txid: '1x1',
      database: APP_DB,
      user: APP_USER,
      participants: [0, 1].map((shard) => ({ shard, gid: gid('1x1', shard) })),
      at: Date.now(),
    });
    await log.close();
    expect(await preparedGids()).toEqual([
      [gid('1x1', 0), gid('1x2', 0)],
      [gid('1x1', 1), gid('1x2', 1)],
    ]);

    await proxy.start();
    expect(await preparedGids()).toEqual([[], []]);
    expect(await rows(decided)).toBe(2);
    expect(await rows(undecided)).toBe(0);
    const [ready] = proxy.logLines(/two-phase commit ready/);
    expect(ready).toMatchObject({ formerInstanceId: former.id, committed: 1, rolledBack: 2 });
    expect(ready.instanceId).not.toBe(former.id);
    expect(proxy.logLines(/recovery: rolled back a prepared transaction/).map((l) => l.gid)).toEqual([
      gid('1x2', 0),
      gid('1x2', 1),
    ]);
    await proxy.stop();
  }, 90_000);
});

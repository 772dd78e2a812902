// The proxy is kill -9'd in the middle of a two-phase commit and started again: recovery commits on every shard
// when the decision row was committed on the decision shard (shard 0), rolls back everywhere when it was not;
// pg_prepared_xacts ends empty either way, within the minimum age plus a recovery interval. Both layouts: the
// decision shard's plain COMMIT as the decision (atomic_visibility = false), and every writer prepared with the
// decision an insert of its own (atomic_visibility = true).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS } from '../helpers/proxy.js';
import { ProxyProcess } from '../helpers/proxy-process.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
let proxy: ProxyProcess;
/** atomic_visibility = true: the prepared-decision layout (every writer prepared, the decision an insert of its own). */
let fenced: ProxyProcess;
let fencedDir: string;

async function prepared(): Promise<number[]> {
  return Promise.all(
    direct.map(async (d) => (await d.query('select 1 from pg_prepared_xacts')).rowCount ?? 0),
  );
}

/** Until `check` holds (polled), at most `ms`. */
async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rows(ids: number[]): Promise<number> {
  let n = 0;
  for (const d of direct) n += (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0;
  return n;
}

/** BEGIN, a row on each shard, COMMIT — through a proxy that dies during the COMMIT. */
async function commitWhileDying(ids: number[], through: ProxyProcess = proxy): Promise<Error | null> {
  const client = new pg.Client({ connectionString: through.url });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('begin');
  await client.query('insert into users (id, name) values ($1, $2), ($3, $4)', [ids[0], 'x', ids[1], 'y']);
  const err = await client.query('commit').then(
    () => null,
    (e: Error) => e,
  );
  await client.end().catch(() => undefined);
  return err;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  await direct[0].query('create table users (id bigint primary key, name text)');
  await direct[1].query('create table users (id bigint primary key, name text)');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-crash-'));
  proxy = await ProxyProcess.create(cluster, {
    dir,
    general:
      // atomic_visibility off: the decision-COMMIT layout (the prepared-decision layout: the proxy `fenced` below).
      `two_phase_commit = true\natomic_visibility = false\ninstance_id = "crash"\ntwo_phase_commit_orphan_timeout = 1000\n` +
      `two_phase_commit_recovery_interval = 500`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  fencedDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-crash-fenced-'));
  fenced = await ProxyProcess.create(cluster, {
    dir: fencedDir,
    general:
      `two_phase_commit = true\natomic_visibility = true\ninstance_id = "crash_f"\n` +
      `two_phase_commit_orphan_timeout = 1000\ntwo_phase_commit_recovery_interval = 500`,
    extraPgdog: USERS_SHARDING_TOML,
  });
});

afterAll(async () => {
  if (proxy?.isRunning) await proxy.stop();
  if (fenced?.isRunning) await fenced.stop();
  if (fencedDir) fs.rmSync(fencedDir, { recursive: true, force: true });
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// A test that failed midway leaves its proxy running: kill it, so the next test's start() is not "already running".
afterEach(async () => {
  for (const p of [proxy, fenced]) if (p?.isRunning) await p.kill9();
});

// Each test starts a proxy twice; a Node start-up on a loaded 2-core machine can take over 30 s (ProxyProcess.start).
describe('crash recovery (proxy killed with SIGKILL during 2PC)', { timeout: 150_000 }, () => {
  it('commits on both shards after a restart when it died after the decision was durable', async () => {
    await proxy.start({ SHARDGATE_FAILPOINTS: 'after_decision=kill' });
    const ids = [idOn(0, 1), idOn(1, 1)];
    const err = await commitWhileDying(ids);
    expect(err).not.toBeNull(); // the client never heard COMMIT
    expect(await proxy.waitForExit()).toBe(137);
    // Shard 0 decided (its plain COMMIT: the row and the decision row); shard 1 is in doubt.
    expect(await prepared()).toEqual([0, 1]);
    expect(await rows(ids)).toBe(1);

    await proxy.start();
    await waitFor(async () => (await rows(ids)) === 2, 10_000, 'recovery to commit shard 1');
    expect(await prepared()).toEqual([0, 0]);
    expect(
      proxy.logLines(/recovery: committed a transaction its decision row says is committed/),
    ).toHaveLength(1);
    await proxy.stop();
  });

  it('rolls back on both shards after a restart when it died before the decision', async () => {
    await proxy.start({ SHARDGATE_FAILPOINTS: 'after_decision_row=kill' });
    const ids = [idOn(0, 100), idOn(1, 100)];
    const err = await commitWhileDying(ids);
    expect(err).not.toBeNull();
    expect(await proxy.waitForExit()).toBe(137);
    expect(await prepared()).toEqual([0, 1]); // shard 0's branch (and its decision row) died with the connection

    await proxy.start();
    await waitFor(async () => (await prepared())[1] === 0, 10_000, 'recovery to roll back shard 1');
    expect(await rows(ids)).toBe(0);
    expect(proxy.logLines(/recovery: rolled back a transaction with no committed decision row/)).toHaveLength(
      1,
    );
    await proxy.stop();
  });

  it('prepared-decision layout: commits on both shards after a restart when it died after the decision', async () => {
    await fenced.start({ SHARDGATE_FAILPOINTS: 'after_decision=kill' });
    const ids = [idOn(0, 300), idOn(1, 300)];
    const err = await commitWhileDying(ids, fenced);
    expect(err).not.toBeNull();
    expect(await fenced.waitForExit()).toBe(137);
    // Decided (the row `true` committed on its own), both branches prepared: nothing visible anywhere yet.
    expect(await prepared()).toEqual([1, 1]);
    expect(await rows(ids)).toBe(0);

    await fenced.start();
    await waitFor(async () => (await rows(ids)) === 2, 10_000, 'recovery to commit both shards');
    expect(await prepared()).toEqual([0, 0]);
    await fenced.stop();
  });

  it('prepared-decision layout: rolls back on both shards after a restart when it died after every PREPARE', async () => {
    await fenced.start({ SHARDGATE_FAILPOINTS: 'after_prepare=kill' });
    const ids = [idOn(0, 400), idOn(1, 400)];
    const err = await commitWhileDying(ids, fenced);
    expect(err).not.toBeNull();
    expect(await fenced.waitForExit()).toBe(137);
    expect(await prepared()).toEqual([1, 1]); // the decision shard's branch is prepared too, no decision row

    await fenced.start();
    await waitFor(async () => (await prepared()).every((n) => n === 0), 10_000, 'recovery to roll back');
    expect(await rows(ids)).toBe(0);
    await fenced.stop();
  });

  it("never touches another instance's or other software's prepared transactions", async () => {
    await direct[0].query('begin');
    await direct[0].query(`insert into users (id, name) values (${idOn(0, 200)}, 'foreign')`);
    await direct[0].query(`prepare transaction 'sg_other_1x1_0'`);
    await direct[1].query('begin');
    await direct[1].query(`insert into users (id, name) values (${idOn(1, 200)}, 'foreign')`);
    await direct[1].query(`prepare transaction 'someone_elses'`);
    try {
      await proxy.start();
      expect(await prepared()).toEqual([1, 1]);
      await proxy.stop();
    } finally {
      await direct[0].query(`rollback prepared 'sg_other_1x1_0'`);
      await direct[1].query(`rollback prepared 'someone_elses'`);
    }
  });
});

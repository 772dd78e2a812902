// Stateless two-phase commit across proxies, on 2 real shards: proxy A's commit is held at a step (an in-process
// failpoint that waits), and proxy B — another instance_id, no shared state — sees it in SHOW TRANSACTIONS and
// settles it with RECOVER by its decision row: committed at once when the decision shard committed (at any age), rolled
// back when it did not (after the minimum age, waiting for A's open decision branch to end). Also: the decision row's
// reply lost with the decision shard down → 40003, and A's recovery rolls back at once once it is back; the decision table is created at start-up, and a role that
// may not create it gets a clear start-up error.
import pg from 'pg';
import { adminClient } from '../helpers/admin-client.js';
import { holdAt } from '../helpers/failpoint-hold.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/logging/logger.js';
import { startProxy } from '../../src/proxy.js';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

/**
 * Minimum age before recovery settles a branch (also the decision branch's idle bound), ms: long enough that the "too
 * young" RECOVER below runs well within it on a loaded machine.
 */
const MIN_AGE_MS = 5_000;

let cluster: PgCluster;
let direct: pg.Client[];
let a: TestProxy;
let b: TestProxy;
const opened: pg.Client[] = [];

/** A minimum age no test here lives to: whatever a proxy with it settles, it settles as "younger than the minimum age". */
const NEVER_OLD_MS = 600_000;

function settings(instanceId: string, minAgeMs = MIN_AGE_MS): string {
  // Periodic recovery far away: only RECOVER settles anything here, so each step is observed. atomic_visibility off:
  // these tests pin the decision-COMMIT layout (the prepared-decision layout: prepared-decision.test.ts).
  return (
    `two_phase_commit = true\natomic_visibility = false\ninstance_id = "${instanceId}"\n` +
    `two_phase_commit_orphan_timeout = ${minAgeMs}\n` +
    `two_phase_commit_recovery_interval = 600000`
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
  const c = await adminClient(proxy.port);
  opened.push(c);
  return c;
}

async function prepared(): Promise<number[]> {
  return Promise.all(
    direct.map(async (d) => (await d.query('select 1 from pg_prepared_xacts')).rowCount ?? 0),
  );
}

async function rows(ids: number[]): Promise<number> {
  let n = 0;
  for (const d of direct) n += (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0;
  return n;
}

/** BEGIN, a row on each shard, COMMIT through `url`; resolves with the COMMIT's error (null: committed). */
async function transfer(url: string, ids: number[]): Promise<(Error & { code?: string }) | null> {
  const c = await connect(url);
  await c.query('begin');
  await c.query('insert into users (id, name) values ($1, $2), ($3, $4)', [ids[0], 'x', ids[1], 'y']);
  return c.query('commit').then(
    () => null,
    (e: Error) => e,
  );
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
  a = await startTestProxy(cluster, { general: settings('proxy_a'), extraPgdog: USERS_SHARDING_TOML });
  b = await startTestProxy(cluster, { general: settings('proxy_b'), extraPgdog: USERS_SHARDING_TOML });
});

afterEach(() => clearFailpoints());

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await a?.close();
  await b?.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
});

describe('stateless two-phase commit across proxies', () => {
  it('creates the decision table on every shard at start-up', async () => {
    for (const d of direct) {
      const r = await d.query(`select to_regclass('shardgate.decisions') is not null as ok`);
      expect(r.rows[0].ok).toBe(true);
    }
  });

  it("proxy B lists proxy A's decided transaction and commits it on RECOVER at once", async () => {
    const ids = [idOn(0, 10), idOn(1, 10)];
    const stall = holdAt('after_decision');
    const commit = transfer(a.url, ids);
    await stall.reached;
    expect(await prepared()).toEqual([0, 1]);
    const console = await admin(b);
    const listed = (await console.query('SHOW TRANSACTIONS')).rows;
    expect(listed).toEqual([
      expect.objectContaining({
        source: 'shards',
        instance_id: 'proxy_a',
        state: 'prepared (in doubt)',
        shards: '1:prepared,0:decision',
        decision: true,
        user: 'app',
      }),
    ]);
    // Its decision row is committed (visible on shard 0): finished at once, without resolving (nothing inserted) —
    // younger than B's minimum age unless this machine is very slow (the next test proves the young case at any load).
    expect((await console.query('RECOVER')).rows[0]).toMatchObject({ committed: '1', rolled_back: '0' });
    expect(await rows(ids)).toBe(2);
    expect(await prepared()).toEqual([0, 0]);
    // A goes on: its COMMIT PREPARED finds the branch finished (42704 counts as done), the client hears COMMIT.
    stall.release();
    expect(await commit).toBeNull();
    // The row is deleted (by A once every participant confirmed, or by the next pass's clean-up).
    await console.query('RECOVER');
    expect((await direct[0].query('select count(*)::int as n from shardgate.decisions')).rows[0].n).toBe(0);
  });

  it('a proxy started while a decided transaction is younger than the minimum age finishes it before it listens', async () => {
    const ids = [idOn(0, 40), idOn(1, 40)];
    const stall = holdAt('after_decision');
    const commit = transfer(a.url, ids);
    await stall.reached;
    expect(await prepared()).toEqual([0, 1]);
    // startTestProxy resolves once the new proxy listens: its start-up recovery has run by then. Its minimum age is
    // one no test lives to: the transaction is young for it however slow this machine is.
    const c = await startTestProxy(cluster, {
      general: settings('proxy_c', NEVER_OLD_MS),
      extraPgdog: USERS_SHARDING_TOML,
    });
    try {
      expect(await prepared()).toEqual([0, 0]);
      expect(await rows(ids)).toBe(2);
    } finally {
      stall.release();
      expect(await commit).toBeNull();
      await c.close();
    }
  });

  it("proxy B rolls back A's undecided transaction once A's open decision branch ends; A's client gets an error", async () => {
    const ids = [idOn(0, 20), idOn(1, 20)];
    const stall = holdAt('after_decision_row');
    const commit = transfer(a.url, ids);
    await stall.reached;
    const reachedAt = Date.now();
    const console = await admin(b);
    // Too young, and not decided: a live commit is left alone — no `false` inserted, no wait on A's row.
    expect((await console.query('RECOVER')).rows[0]).toMatchObject({
      committed: '0',
      rolled_back: '0',
      pending: '0',
    });
    expect(Date.now() - reachedAt).toBeLessThan(MIN_AGE_MS); // else the check above proved nothing
    const falseRows = 'select count(*)::int as n from shardgate.decisions where not committed';
    expect((await direct[0].query(falseRows)).rows[0].n).toBe(0);
    await sleep(MIN_AGE_MS + 100 - (Date.now() - reachedAt));
    // A's decision branch is open and idle, holding its uncommitted row: B's insert waits on the key. Once
    // idle_in_transaction_session_timeout (the minimum age) ends that branch, B's `false` goes in.
    let report: Record<string, string> = {};
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      report = (await console.query('RECOVER')).rows[0];
      if (report.rolled_back === '1') break;
      await sleep(200);
    }
    expect(report).toMatchObject({ committed: '0', rolled_back: '1' });
    expect(await prepared()).toEqual([0, 0]);
    const row = await direct[0].query('select committed from shardgate.decisions where committed = false');
    expect(row.rows).toEqual([{ committed: false }]);
    stall.release();
    const err = await commit;
    expect(err).not.toBeNull();
    expect(err?.code).not.toBe('40003');
    expect(await rows(ids)).toBe(0);
    expect(await prepared()).toEqual([0, 0]);
  });

  it('answers 40003 when the decision shard is unreachable at its COMMIT, and recovery settles it once it is back', async () => {
    const stopOne = cluster.stopOne?.bind(cluster);
    const startOne = cluster.startOne?.bind(cluster);
    if (stopOne === undefined || startOne === undefined) return; // external servers: cannot stop them
    const ids = [idOn(0, 30), idOn(1, 30)];
    setFailpoint('after_decision_row', { kind: 'call', fn: () => stopOne(0) });
    const err = await transfer(a.url, ids);
    clearFailpoints();
    expect(err?.code).toBe('40003');
    expect(err?.message).toMatch(/outcome of this COMMIT is unknown/);
    await direct[0].end().catch(() => undefined);
    await startOne(0);
    direct[0] = (await directShardClients(cluster))[0];
    expect(await prepared()).toEqual([0, 1]);
    // A gave up on it (40003) and handed it to its recovery, which settles it at any age: no minimum age to wait.
    const console = await admin(a);
    expect((await console.query('RECOVER')).rows[0]).toMatchObject({ committed: '0', rolled_back: '1' });
    expect(await prepared()).toEqual([0, 0]);
    expect(await rows(ids)).toBe(0);
  });

  it('refuses to start with a clear error when the role may not create the decision table', async () => {
    const d = direct[0];
    await d.query(`create role weak login password 'weak'`);
    const schema = 'sg_weak';
    const users = `[[users]]\nname = "weak"\ndatabase = "app"\npassword = "weak"\n`;
    const dbs = cluster.servers
      .map(
        (s, shard) =>
          `[[databases]]\nname = "app"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "app"\nshard = ${shard}\n`,
      )
      .join('\n');
    const pgdog =
      `[general]\nhost = "127.0.0.1"\nport = 0\ntwo_phase_commit = true\ninstance_id = "weak"\n` +
      `two_phase_commit_schema = "${schema}"\n\n${dbs}\n${USERS_SHARDING_TOML}`;
    const { config } = parseConfig(pgdog, users, { configPath: 'weak.toml', usersPath: 'weak-users.toml' });
    await expect(startProxy(config, silentLogger())).rejects.toThrow(
      /needs the decision table sg_weak\.decisions on shard 0 of database "app" .*role "weak" may not create it: permission denied/,
    );
  });
});

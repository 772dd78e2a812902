// The prepared-decision layout of two-phase commit (atomic_visibility = true: every writer, the decision shard's too,
// is prepared; the decision is an autocommit insert; COMMIT PREPARED makes everything visible), on 2 real shards, next
// to a proxy running the decision-COMMIT layout (atomic_visibility = false) on the same shards, as during a rolling
// upgrade or a reload: proxy A's commit is held at a step (an in-process failpoint that waits) and the other layout's
// proxy settles it with RECOVER by the decision row — and the other way round. Also: the decision shard's data is not
// visible between the decision and COMMIT PREPARED.
import pg from 'pg';
import { adminClient } from '../helpers/admin-client.js';
import { holdAt } from '../helpers/failpoint-hold.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints } from '../../src/txn/failpoints.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

/** Minimum age before recovery settles an undecided branch, ms: the "too young" RECOVER runs well within it. */
const MIN_AGE_MS = 4_000;

let cluster: PgCluster;
let direct: pg.Client[];
/** atomic_visibility = true: the prepared-decision layout. */
let fenced: TestProxy;
/** atomic_visibility = false: the decision-COMMIT layout. */
let plain: TestProxy;
const opened: pg.Client[] = [];

function settings(instanceId: string, isFenced: boolean): string {
  // Periodic recovery far away: only RECOVER settles anything here, so each step is observed.
  return (
    `two_phase_commit = true\natomic_visibility = ${isFenced}\ninstance_id = "${instanceId}"\n` +
    `two_phase_commit_orphan_timeout = ${MIN_AGE_MS}\ntwo_phase_commit_recovery_interval = 600000`
  );
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  opened.push(c);
  return c;
}

async function recover(proxy: TestProxy): Promise<Record<string, string>> {
  const c = await adminClient(proxy.port);
  try {
    return (await c.query('RECOVER')).rows[0] as Record<string, string>;
  } finally {
    await c.end();
  }
}

/** GIDs prepared on each shard. */
async function prepared(): Promise<string[][]> {
  return Promise.all(
    direct.map(async (d) =>
      (await d.query<{ gid: string }>('select gid from pg_prepared_xacts order by gid')).rows.map(
        (r) => r.gid,
      ),
    ),
  );
}

/** Rows of `ids` on each shard, read straight from the shard. */
async function rowsOn(ids: number[]): Promise<number[]> {
  return Promise.all(
    direct.map(async (d) => (await d.query('select 1 from users where id = any($1)', [ids])).rowCount ?? 0),
  );
}

/** Committed decision rows on shard 0 (the decision shard here), read plainly. */
async function decisions(): Promise<{ txid: string; committed: boolean }[]> {
  return (await direct[0].query('select txid, committed from shardgate.decisions order by decided_at')).rows;
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

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const d of direct) await d.query('create table users (id bigint primary key, name text)');
  fenced = await startTestProxy(cluster, {
    general: settings('pd_fenced', true),
    extraPgdog: USERS_SHARDING_TOML,
  });
  plain = await startTestProxy(cluster, {
    general: settings('pd_plain', false),
    extraPgdog: USERS_SHARDING_TOML,
  });
});

afterEach(() => clearFailpoints());

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await fenced?.close();
  await plain?.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
});

describe('two-phase commit, prepared-decision layout (atomic_visibility = true)', () => {
  it('prepares the decision shard too, decides with its own insert, and shows nothing before COMMIT PREPARED', async () => {
    const ids = [idOn(0, 10), idOn(1, 10)];
    const phaseOne = holdAt('after_prepare');
    const decided = holdAt('after_decision');
    const commit = transfer(fenced.url, ids);
    await phaseOne.reached;
    // Round trip 1 is over: both branches prepared (the decision shard's carries its own d0 GID), no decision yet.
    const atPrepare = await prepared();
    expect(atPrepare.map((g) => g.length)).toEqual([1, 1]);
    expect(atPrepare[0][0]).toMatch(/^sg_pd_fenced_[0-9a-z]+x[0-9a-z]+_0_d0$/);
    expect(atPrepare[1][0]).toMatch(/_1_d0$/);
    expect(await decisions()).toEqual([]);
    phaseOne.release();
    await decided.reached;
    // Round trip 2 is over: the decision is committed on shard 0, yet no data is visible anywhere — a reader of the
    // decision shard alone does not see the row.
    expect(await decisions()).toEqual([expect.objectContaining({ committed: true })]);
    expect((await prepared()).map((g) => g.length)).toEqual([1, 1]);
    expect(await rowsOn(ids)).toEqual([0, 0]);
    decided.release();
    expect(await commit).toBeNull();
    // Round trip 3 made both visible; nothing is left prepared.
    expect(await rowsOn(ids)).toEqual([1, 1]);
    expect(await prepared()).toEqual([[], []]);
  });

  it('SHOW TRANSACTIONS on another proxy lists a held transaction of this layout with each shard once', async () => {
    const ids = [idOn(0, 15), idOn(1, 15)];
    const stall = holdAt('after_decision');
    const commit = transfer(fenced.url, ids);
    await stall.reached;
    const c = await adminClient(plain.port);
    opened.push(c);
    try {
      expect((await c.query('SHOW TRANSACTIONS')).rows).toEqual([
        expect.objectContaining({
          source: 'shards',
          instance_id: 'pd_fenced',
          state: 'prepared (in doubt)',
          // The decision shard's branch is prepared too: one entry for it, as the owning proxy lists it.
          shards: '0:decision prepared,1:prepared',
          decision: true,
        }),
      ]);
    } finally {
      stall.release();
    }
    expect(await commit).toBeNull();
  });

  it('a proxy of the decision-COMMIT layout commits a decided transaction of this layout on RECOVER, both shards', async () => {
    const ids = [idOn(0, 20), idOn(1, 20)];
    const stall = holdAt('after_decision');
    const commit = transfer(fenced.url, ids);
    await stall.reached;
    expect(await rowsOn(ids)).toEqual([0, 0]);
    // The decision row is committed `true`: finished at once, the decision shard's prepared branch by the same rule.
    expect(await recover(plain)).toMatchObject({ committed: '1', rolled_back: '0' });
    expect(await rowsOn(ids)).toEqual([1, 1]);
    expect(await prepared()).toEqual([[], []]);
    // The owner goes on: its COMMIT PREPARED finds both branches finished (42704 counts as done).
    stall.release();
    expect(await commit).toBeNull();
  });

  it("rolls back an undecided transaction of this layout (recovery's `false` first); the owner's late insert fails on the key", async () => {
    const ids = [idOn(0, 30), idOn(1, 30)];
    const stall = holdAt('after_prepare');
    const commit = transfer(fenced.url, ids);
    await stall.reached;
    const reachedAt = Date.now();
    // Too young: a live commit is left alone.
    expect(await recover(plain)).toMatchObject({ committed: '0', rolled_back: '0' });
    expect(Date.now() - reachedAt).toBeLessThan(MIN_AGE_MS); // else the check above proved nothing
    await new Promise((r) => setTimeout(r, MIN_AGE_MS + 100 - (Date.now() - reachedAt)));
    expect(await recover(plain)).toMatchObject({ committed: '0', rolled_back: '1' });
    expect(await prepared()).toEqual([[], []]);
    expect((await decisions()).filter((d) => !d.committed)).toHaveLength(1);
    stall.release();
    const err = await commit;
    // The decision insert met recovery's `false` on the key: nothing committed, and the client is told so.
    expect(err?.code).toBe('40000');
    expect(err?.message).toMatch(
      /could not write the commit decision on shard 0; the transaction was rolled back/,
    );
    expect(await rowsOn(ids)).toEqual([0, 0]);
    expect(await prepared()).toEqual([[], []]);
  });

  it('commits a decided transaction of the decision-COMMIT layout on RECOVER (the other direction)', async () => {
    const ids = [idOn(0, 40), idOn(1, 40)];
    const stall = holdAt('after_decision');
    const commit = transfer(plain.url, ids);
    await stall.reached;
    // That layout: the decision shard committed (its row visible), shard 1 prepared.
    expect((await prepared()).map((g) => g.length)).toEqual([0, 1]);
    expect(await rowsOn(ids)).toEqual([1, 0]);
    expect(await recover(fenced)).toMatchObject({ committed: '1', rolled_back: '0' });
    expect(await rowsOn(ids)).toEqual([1, 1]);
    expect(await prepared()).toEqual([[], []]);
    stall.release();
    expect(await commit).toBeNull();
  });
});

// Distributed deadlocks through session-mode pools and replica sets' pools (issue 18). Session mode: a client keeps
// the servers it took until it leaves, so a checkout queued in a full pool waits for the sessions holding its
// servers; a holder that is idle waits for nothing (its client may leave) and is never taken for blocked: the checkout
// just waits. Once the holders wait in turn for the waiter's own server, the knot is broken within deadlock_timeout
// plus a check: the youngest session's checkout fails with 40P01 (it keeps its servers, session mode), the other is
// served once it leaves. Replica sets: READ ONLY blocks take replicas' servers; a checkout queued in the pool of the
// member its set picked waits for that pool's holders, and a knot through them is broken the same way (the victim's
// block is rolled back and its servers go back, transaction mode). The "replicas" here are the shards' own servers
// listed a second time with role = "replica": pools of their own, which is all the check looks at.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { outcome, trackedClient } from '../helpers/outcome.js';
import { directShardClients, idOn } from '../helpers/sharding.js';

const ACCOUNTS_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "accounts"
column = "id"
data_type = "bigint"
`;

/** checkout_timeout far above the 2 s a knot may take to break: a 40P01 cannot be the pool timeout. */
const GENERAL = 'deadlock_timeout = 300\ncheckout_timeout = 15000';

let cluster: PgCluster;
/** Session mode, one server per shard. */
let proxy: TestProxy;
/** Transaction mode, each shard with a replica (reads of READ ONLY blocks go there only), one server per pool. */
let replicas: TestProxy;
const clients: pg.Client[] = [];

function connect(to: TestProxy = proxy): Promise<pg.Client> {
  return trackedClient(to, clients);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: ACCOUNTS_TOML,
    general: `pooler_mode = "session"\n${GENERAL}`,
    userExtra: 'pool_size = 1',
  });
  const replicaEntries = cluster.servers
    .slice(0, 2)
    .map(
      (s, shard) =>
        `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\nrole = "replica"\n`,
    )
    .join('\n');
  replicas = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: ACCOUNTS_TOML + replicaEntries,
    general: `read_write_split = "exclude_primary"\n${GENERAL}`,
    userExtra: 'pool_size = 1',
  });
  const direct = await directShardClients(cluster);
  for (const d of direct) {
    await d.query('create table accounts (id bigint primary key, balance bigint not null)');
    await d.end();
  }
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  await proxy?.close();
  await replicas?.close();
  await cluster?.stop();
});

describe('distributed deadlocks through session-mode pools and replica sets', () => {
  it('leaves a checkout waiting for an idle session alone, and breaks the knot once that session waits for it', async () => {
    const [zero, one] = [idOn(0, 1), idOn(1, 1)];
    const a = await connect();
    const b = await connect();
    await a.query(`select * from accounts where id = ${zero}`); // A keeps shard 0's only server
    await b.query(`select * from accounts where id = ${one}`); // B keeps shard 1's
    const checksBefore = proxy.proxy.deadlocks.checks;
    const deadlocksBefore = proxy.proxy.deadlocks.deadlocks;
    // A waits for shard 1's server, which idle B keeps: a wait (B's client may leave), no deadlock.
    const aWaits = outcome(a.query(`select * from accounts where id = ${one}`));
    const early = await Promise.race([aWaits, new Promise((r) => setTimeout(() => r('waiting'), 1_500))]);
    expect(early).toBe('waiting');
    expect(proxy.proxy.deadlocks.checks).toBeGreaterThan(checksBefore);
    expect(proxy.proxy.deadlocks.deadlocks).toBe(deadlocksBefore);
    // B now waits for shard 0's server, which A keeps while it waits for B's: a knot. B (its wait began last) is the
    // victim; it keeps its server (session mode), so A is served once B's client leaves.
    const started = performance.now();
    const bErr = await b.query(`select * from accounts where id = ${zero}`).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(bErr?.code).toBe('40P01');
    expect(bErr?.detail).toMatch(/waits for a server of shard 0, held by session \d+/);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(proxy.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    expect((await b.query('select 1 as n')).rows).toEqual([{ n: 1 }]); // B's session goes on
    await b.end();
    expect(await aWaits).toBe('ok');
  });

  it("follows a checkout queued in a replica's pool: no knot while the holder is idle, one 40P01 once it is", async () => {
    const [zero, one] = [idOn(0, 1), idOn(1, 1)];
    const a = await connect(replicas);
    const b = await connect(replicas);
    await a.query('begin read only');
    await a.query(`select * from accounts where id = ${zero}`); // A's block holds shard 0's replica server
    await b.query('begin read only');
    await b.query(`select * from accounts where id = ${one}`); // B's holds shard 1's
    const checksBefore = replicas.proxy.deadlocks.checks;
    const deadlocksBefore = replicas.proxy.deadlocks.deadlocks;
    const aWaits = outcome(a.query(`select * from accounts where id = ${one}`));
    const early = await Promise.race([aWaits, new Promise((r) => setTimeout(() => r('waiting'), 1_500))]);
    expect(early).toBe('waiting');
    expect(replicas.proxy.deadlocks.checks).toBeGreaterThan(checksBefore);
    expect(replicas.proxy.deadlocks.deadlocks).toBe(deadlocksBefore);
    const started = performance.now();
    const bErr = await b.query(`select * from accounts where id = ${zero}`).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(bErr?.code).toBe('40P01');
    expect(bErr?.detail).toMatch(/waits for a server of shard 0, held by session \d+/);
    expect(performance.now() - started).toBeLessThan(2_000);
    // B's block is rolled back and its replica server goes back (transaction mode): A is served at once.
    expect(await aWaits).toBe('ok');
    expect(replicas.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    await a.query('commit');
    expect(await outcome(b.query('select 1'))).toBe('25P02');
    await b.query('rollback');
  });
});

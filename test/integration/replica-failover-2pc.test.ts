// role = "auto" failover on a sharded database with two-phase commits in flight: 2 shards, a primary and a streaming
// replica each, all four entries `role = "auto"`; clients run bank transfers between the shards (each a 2PC
// transaction that also writes a ledger row per shard). While one transfer's commit is held between its decision row
// and its COMMIT PREPAREDs (a failpoint), shard 1's primary is stopped (fast shutdown: it sends its WAL, prepared
// transactions included, to the replica) and the replica promoted (pg_promote — the proxy never promotes).
// The proxy follows: transfers commit again on the new primary, recovery settles every transaction left in doubt on
// it, nothing stays prepared, the total is conserved, no transfer is half applied, and every client's answer is
// true: a COMMIT that succeeded is applied on both shards, a transfer that failed before its COMMIT on neither.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import {
  connect,
  databaseEntry,
  direct,
  directSuperuser,
  hasNoLocalServers,
  startClusterWithReplicas,
  waitFor,
} from '../helpers/replicas.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const LEDGER_TOML = `
[[sharded_tables]]
database = "app"
name = "ledger"
column = "id"
data_type = "bigint"
`;
const ACCOUNTS_PER_SHARD = 10;
const START_BALANCE = 1000;
const WORKERS = 4;

/** What a client was told about one transfer. */
type Outcome = 'committed' | 'failed_before_commit' | 'commit_error';

describe.skipIf(hasNoLocalServers)(
  'role = "auto" failover of one shard with two-phase commits in flight',
  () => {
    let cluster: PgCluster;
    let replicaOf: number[] = [];
    let proxy: TestProxy;
    const accounts: number[][] = [[], []];

    beforeAll(async () => {
      ({ cluster, replicaOf } = await startClusterWithReplicas(2));
      for (const shard of [0, 1]) {
        for (let from = 1; accounts[shard].length < ACCOUNTS_PER_SHARD;) {
          const id = idOn(shard, from);
          accounts[shard].push(id);
          from = id + 1;
        }
        const setup = await direct(cluster, shard);
        await setup.query('CREATE TABLE users (id bigint PRIMARY KEY, v text, balance bigint NOT NULL)');
        await setup.query(
          'CREATE TABLE ledger (id bigint NOT NULL, tid text NOT NULL, PRIMARY KEY (id, tid))',
        );
        for (const id of accounts[shard])
          await setup.query('INSERT INTO users VALUES ($1, $2, $3)', [id, 'acct', START_BALANCE]);
        await setup.end();
      }
      const entries = [0, 1]
        .map(
          (shard) =>
            databaseEntry(cluster, shard, 'auto', shard) +
            databaseEntry(cluster, replicaOf[shard], 'auto', shard),
        )
        .join('');
      proxy = await startTestProxy(cluster, {
        shards: 0, // the entries above, "auto"
        general: [
          'two_phase_commit = true',
          'lsn_check_delay = 0',
          'lsn_check_interval = 200',
          'lsn_check_timeout = 1000',
          'ban_timeout = 2000',
          'connect_timeout = 1000',
          'checkout_timeout = 5000',
          'two_phase_commit_recovery_interval = 500',
          'two_phase_commit_orphan_timeout = 1000',
        ].join('\n'),
        extraPgdog: USERS_SHARDING_TOML + LEDGER_TOML + entries,
      });
    }, 90_000);
    afterAll(async () => {
      await proxy?.close();
      await cluster?.stop();
    });

    it('follows the promotion: 2PC resumes on the new primary, recovery finishes in-doubt branches, totals hold', async () => {
      const outcomes = new Map<string, Outcome>();
      let isRunning = true;
      let committed = 0;

      async function worker(w: number): Promise<void> {
        let client: pg.Client | null = null;
        for (let n = 0; isRunning; n++) {
          const tid = `w${w}-${n}`;
          try {
            client ??= await connect(proxy.url);
          } catch {
            client = null;
            await new Promise((resolve) => setTimeout(resolve, 50));
            continue;
          }
          const c = client;
          const fromShard = n % 2;
          const from = accounts[fromShard][(w + n) % ACCOUNTS_PER_SHARD];
          const to = accounts[1 - fromShard][(w * 3 + n) % ACCOUNTS_PER_SHARD];
          const amount = 1 + (n % 7);
          let isAtCommit = false;
          try {
            await c.query('BEGIN');
            await c.query('UPDATE users SET balance = balance - $1 WHERE id = $2', [amount, from]);
            await c.query('UPDATE users SET balance = balance + $1 WHERE id = $2', [amount, to]);
            await c.query('INSERT INTO ledger (id, tid) VALUES ($1, $3), ($2, $3)', [from, to, tid]);
            isAtCommit = true;
            await c.query('COMMIT');
            outcomes.set(tid, 'committed');
            committed++;
          } catch {
            outcomes.set(tid, isAtCommit ? 'commit_error' : 'failed_before_commit');
            await c.query('ROLLBACK').catch(() => undefined);
            await c.end().catch(() => undefined);
            client = null; // a fresh connection: this one may be gone
          }
        }
        await client?.end().catch(() => undefined);
      }

      /** Shard 1's primary goes away (fast shutdown) and its replica is promoted by someone else than the proxy. */
      let preparedAtPromotion = -1;
      const failover = async (): Promise<void> => {
        if (cluster.stopOne === undefined) throw new Error('local cluster');
        await cluster.stopOne(1);
        const su = await directSuperuser(cluster, replicaOf[1]);
        const first = await direct(cluster, 0);
        try {
          await su.query('SELECT pg_promote(true, 30)');
          let n = 0;
          for (const c of [su, first]) n += (await c.query('SELECT 1 FROM pg_prepared_xacts')).rowCount ?? 0;
          preparedAtPromotion = n;
        } finally {
          await su.end();
          await first.end();
        }
      };

      const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
      try {
        await waitFor(() => Promise.resolve(committed >= 20), 'transfers before the failover', 30_000);
        // The failover happens while a transfer's commit is between its decision row and its COMMIT PREPAREDs: its
        // other shard's branch is prepared (on shard 1, or on shard 0 when shard 1 holds the decision row).
        setFailpoint('after_decision_row', {
          kind: 'call',
          fn: async () => {
            setFailpoint('after_decision_row', null);
            await failover();
          },
        });
        await waitFor(() => Promise.resolve(preparedAtPromotion >= 0), 'the failover', 30_000);
        expect(preparedAtPromotion).toBeGreaterThanOrEqual(1); // in doubt, for recovery to finish
        const atPromotion = committed;
        await waitFor(
          () => Promise.resolve(committed >= atPromotion + 20),
          'transfers committing again after the promotion',
          30_000,
        );
      } finally {
        clearFailpoints();
        isRunning = false;
        await Promise.all(workers);
      }

      const shard0 = await direct(cluster, 0);
      const shard1 = await direct(cluster, replicaOf[1]);
      const admin = await connect(`postgres://admin:admin@127.0.0.1:${proxy.port}/admin`);
      try {
        // Writes on shard 1 land on the promoted server.
        const landed = await connect(proxy.url);
        const { rows } = await landed.query<{ port: number }>(
          'UPDATE users SET v = $1 WHERE id = $2 RETURNING inet_server_port() AS port',
          ['after', accounts[1][0]],
        );
        await landed.end();
        expect(rows).toEqual([{ port: cluster.servers[replicaOf[1]].port }]);
        // Recovery settles whatever the failover left prepared (on the promoted server too).
        await waitFor(
          async () => {
            await admin.query('RECOVER');
            const left = await Promise.all(
              [shard0, shard1].map(
                async (c) => (await c.query('SELECT gid FROM pg_prepared_xacts')).rowCount,
              ),
            );
            return left.every((n) => n === 0);
          },
          'no prepared transaction left',
          30_000,
        );
        // The total is conserved, and every transfer is on both shards or on neither.
        const sum = async (c: pg.Client): Promise<number> =>
          Number((await c.query<{ s: string }>('SELECT sum(balance) AS s FROM users')).rows[0].s);
        expect((await sum(shard0)) + (await sum(shard1))).toBe(2 * ACCOUNTS_PER_SHARD * START_BALANCE);
        const onShard = async (c: pg.Client): Promise<Set<string>> =>
          new Set((await c.query<{ tid: string }>('SELECT tid FROM ledger')).rows.map((r) => r.tid));
        const [on0, on1] = [await onShard(shard0), await onShard(shard1)];
        const halfApplied = [...new Set([...on0, ...on1])].filter((tid) => on0.has(tid) !== on1.has(tid));
        expect(halfApplied).toEqual([]);
        // Every answer was true: a successful COMMIT is applied; a transfer that failed before COMMIT is not.
        const wrong: string[] = [];
        for (const [tid, outcome] of outcomes) {
          const isApplied = on0.has(tid);
          if (outcome === 'committed' && !isApplied) wrong.push(`${tid}: COMMIT succeeded, not applied`);
          if (outcome === 'failed_before_commit' && isApplied) wrong.push(`${tid}: failed, yet applied`);
        }
        expect(wrong).toEqual([]);
        expect([...outcomes.values()].filter((o) => o === 'committed').length).toBeGreaterThanOrEqual(40);
      } finally {
        await shard0.end();
        await shard1.end();
        await admin.end();
      }
    });
  },
);

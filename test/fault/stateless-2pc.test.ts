// Stateless two-phase commit under the death of a proxy for good (issue 15): two proxies on the same 2 shards; the bank
// workload runs through proxy A — of either commit layout (atomic_visibility on: every writer prepared and the
// decision an insert of its own; off: the decision shard's plain COMMIT decides) — which dies at one step of the commit
// path — SIGKILL (sockets closed) or SIGSTOP (a host that vanished without closing them; left stopped until the checks
// are done) — and is replaced by a proxy with a new instance_id, a new port and an empty folder. Proxy B and the
// replacement recover. Checked per case: within the minimum age plus one recovery interval (plus slack for this loaded
// machine) nothing is prepared on any shard, the total is conserved, every transfer the client saw committed is on both
// shards, every transfer the client saw fail (an ErrorResponse other than 40003) is on none, and balances agree with
// the ledger. `npm test` runs a representative subset; SHARDGATE_FAULT_FULL=1 runs every step × both signals × both
// layouts. SHARDGATE_REPLY_MODE=at_decision runs it with two_phase_commit_reply = "at_decision" (COMMIT answered at
// the decision): at_decision keeps the decision-COMMIT layout, so every case then runs that layout (after_prepare is
// fired at its after_decision_row step); the decision_commit cases keep the default reply (at_decision needs
// atomic_visibility).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, APP_USER } from '../helpers/proxy.js';
import { ProxyProcess } from '../helpers/proxy-process.js';
import { directShardClients } from '../helpers/sharding.js';
import {
  BANK_SCHEMA,
  BANK_SHARDING_TOML,
  bankAccounts,
  INITIAL_BALANCE,
  newBankStats,
  runBank,
  type BankOutcomes,
  type BankStats,
} from './bank-workload.js';

const ACCOUNTS_PER_SHARD = 50;
/** Minimum age before recovery settles a prepared branch (and the decision branch's idle bound), ms. */
const MIN_AGE_MS = 2_000;
const RECOVERY_INTERVAL_MS = 500;
/** Slack on top of MIN_AGE_MS + RECOVERY_INTERVAL_MS for a machine shared with other test runs. */
const SLACK_MS = 8_000;
/**
 * Open (not prepared) transactions of a stopped proxy hold row locks until the server ends them: the shards' roles get
 * idle_in_transaction_session_timeout, as docs/operations.md advises for N proxies.
 */
const ROLE_IDLE_TIMEOUT = '3s';

type Step =
  | 'before_prepare'
  | 'mid_prepare'
  | 'after_prepare'
  | 'after_decision_row'
  | 'after_decision'
  | 'mid_commit_prepared';
type Death = 'kill' | 'stop';
/**
 * The dying proxy's layout: `prepared` (atomic_visibility = true, the default: every writer prepared, the decision an
 * autocommit insert) or `decision_commit` (atomic_visibility = false: the decision shard's plain COMMIT decides). Proxy
 * B and the replacement run the default either way: a rolling upgrade or a reload mixes the two on the same shards.
 */
type Layout = 'prepared' | 'decision_commit';
type Case = [Step, Death, Layout];

/** Every step of each layout's commit path (after_prepare and after_decision_row: phase 1 over, nothing decided). */
const STEPS: Readonly<Record<Layout, readonly Step[]>> = {
  prepared: ['before_prepare', 'mid_prepare', 'after_prepare', 'after_decision', 'mid_commit_prepared'],
  decision_commit: [
    'before_prepare',
    'mid_prepare',
    'after_decision_row',
    'after_decision',
    'mid_commit_prepared',
  ],
};
const FULL: Case[] = (['prepared', 'decision_commit'] as const).flatMap((layout) =>
  STEPS[layout].flatMap((s): Case[] => [
    [s, 'kill', layout],
    [s, 'stop', layout],
  ]),
);
/** Every step once, each signal at the steps where it matters most (an open decision branch for SIGSTOP). */
const SUBSET: Case[] = [
  ['before_prepare', 'stop', 'prepared'],
  ['mid_prepare', 'kill', 'prepared'],
  ['after_prepare', 'stop', 'prepared'],
  ['after_decision', 'kill', 'prepared'],
  ['mid_commit_prepared', 'stop', 'prepared'],
  ['after_decision_row', 'stop', 'decision_commit'],
  ['after_decision', 'stop', 'decision_commit'],
];
const CASES = process.env.SHARDGATE_FAULT_FULL === '1' ? FULL : SUBSET;

let cluster: PgCluster;
let direct: pg.Client[];
let root: string;
let other: ProxyProcess;
const started: ProxyProcess[] = [];

function generalFor(instanceId: string, layout: Layout): string {
  return (
    `two_phase_commit = true\ntwo_phase_commit_auto = true\ninstance_id = "${instanceId}"\n` +
    `two_phase_commit_orphan_timeout = ${MIN_AGE_MS}\ntwo_phase_commit_recovery_interval = ${RECOVERY_INTERVAL_MS}` +
    // at_decision needs atomic_visibility (the configuration is refused otherwise)
    (layout === 'decision_commit'
      ? '\natomic_visibility = false'
      : process.env.SHARDGATE_REPLY_MODE
        ? `\ntwo_phase_commit_reply = "${process.env.SHARDGATE_REPLY_MODE}"`
        : '')
  );
}

/** A proxy with its own folder (empty: no local state), port and instance id. */
async function newProxy(instanceId: string, layout: Layout = 'prepared'): Promise<ProxyProcess> {
  const dir = fs.mkdtempSync(path.join(root, `${instanceId}-`));
  const proxy = await ProxyProcess.create(cluster, {
    dir,
    general: generalFor(instanceId, layout),
    extraPgdog: BANK_SHARDING_TOML(APP_DB),
  });
  started.push(proxy);
  return proxy;
}

/** Whether `pid` is stopped (SIGSTOP): state T in /proc/<pid>/stat. */
function isStopped(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Prepared transactions on every shard; only those whose GID carries `instanceId` when given. */
async function preparedCount(instanceId?: string): Promise<number> {
  let n = 0;
  for (const d of direct) {
    const r = await d.query('select gid from pg_prepared_xacts');
    n += r.rows.filter(
      (row: { gid: string }) => instanceId === undefined || row.gid.includes(`_${instanceId}_`),
    ).length;
  }
  return n;
}

/** The invariants of the issue, on the shards as they are now. */
async function checkInvariants(outcomes: BankOutcomes): Promise<void> {
  let total = 0;
  for (const d of direct)
    total += Number((await d.query('select sum(balance) as s from accounts')).rows[0].s);
  expect(total).toBe(2 * ACCOUNTS_PER_SHARD * INITIAL_BALANCE);
  const sides = new Map<string, number>();
  for (const d of direct) {
    for (const row of (await d.query<{ transfer_id: string }>('select transfer_id from ledger')).rows)
      sides.set(row.transfer_id, (sides.get(row.transfer_id) ?? 0) + 1);
  }
  expect([...sides].filter(([, n]) => n !== 2)).toEqual([]); // on both shards or neither
  expect([...outcomes.committed].filter((id) => sides.get(id) !== 2)).toEqual([]);
  expect([...outcomes.failed].filter((id) => sides.has(id))).toEqual([]);
  for (const d of direct) {
    const r = await d.query(
      `select count(*) as bad from accounts a left join (select account_id, sum(amount) as s from ledger group by account_id) l
         on l.account_id = a.id where a.balance <> ${INITIAL_BALANCE} + coalesce(l.s, 0)`,
    );
    expect(Number(r.rows[0].bad)).toBe(0);
  }
}

/** Until the workload has `n` more committed transfers than `from`. */
async function transfersPast(stats: BankStats, from: number, n: number): Promise<void> {
  await until(() => stats.transfers >= from + n, 60_000, `${n} committed transfers`);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
    await d.query(`alter role ${APP_USER} set idle_in_transaction_session_timeout = '${ROLE_IDLE_TIMEOUT}'`);
  }
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-stateless-'));
  other = await newProxy('proxy_b');
  await other.start();
}, 120_000);

afterAll(async () => {
  for (const p of started) if (p.isRunning) await p.kill9(); // also the ones left stopped
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe('stateless two-phase commit: the proxy dies for good at each step of the commit path', () => {
  CASES.forEach(([step, death, layout], k) => {
    it(`${layout} layout, ${step} with SIG${death === 'kill' ? 'KILL' : 'STOP'}: another proxy finishes everything`, async () => {
      const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
      const dying = await newProxy(`a${k}`, layout);
      // The replacement: a new instance_id, port and folder — nothing of A's survives. Started beside A, as a load
      // balancer's next healthy pod.
      const replacement = await newProxy(`r${k}`);
      await Promise.all([dying.start({ SHARDGATE_FAILPOINTS: `${step}=${death}` }), replacement.start()]);
      const pid = dying.pid as number;
      let url = dying.url;
      let isRunning = true;
      const outcomes: BankOutcomes = { committed: new Set(), failed: new Set() };
      const live = newBankStats();
      const work = runBank(
        {
          url: () => url,
          accounts,
          writers: 4,
          readers: 1,
          isRunning: () => isRunning,
          queryTimeoutMs: 4_000,
          reconnectDelayMs: 100,
          outcomes,
        },
        live,
      );
      // The first two-phase commit to reach the step kills or stops the whole process.
      await until(
        () => (death === 'kill' ? !dying.isRunning : isStopped(pid)),
        60_000,
        `proxy A to ${death}`,
      );
      const diedAt = Date.now();
      url = replacement.url;
      const leftByA = await preparedCount(`a${k}`);
      // Every branch A left prepared is finished by B or the replacement (its decision row decides).
      await until(
        async () => (await preparedCount(`a${k}`)) === 0,
        MIN_AGE_MS + RECOVERY_INTERVAL_MS + SLACK_MS,
        `the prepared transactions of proxy A (a${k}) to be settled`,
      );
      const settledMs = Date.now() - diedAt;
      // The workload goes on through the replacement (no lock stays held), then stops.
      await transfersPast(live, live.transfers, 5);
      isRunning = false;
      await work;
      await until(async () => (await preparedCount()) === 0, 10_000, 'no prepared transaction left');
      console.log(
        `${step}/${death}: A left ${leftByA} prepared, settled ${settledMs} ms after it died (bound ` +
          `${MIN_AGE_MS + RECOVERY_INTERVAL_MS} ms + ${SLACK_MS} ms slack); ${outcomes.committed.size} transfers ` +
          `committed, ${outcomes.failed.size} failed, ${live.failedTransfers - outcomes.failed.size} lost with a connection`,
      );
      await checkInvariants(outcomes);
      expect(outcomes.committed.size).toBeGreaterThanOrEqual(5);
      if (death === 'stop') await dying.kill9(); // the host "comes back" only as a dead process
      await replacement.stop();
    }, 120_000);
  });
});

// two_phase_commit_reply = "at_decision" (issue 15) on 2 real shards: the client's COMMIT is answered at the decision
// shard's COMMIT and phase 2 runs in the background. Checked: with phase 2 slowed down, single-shard reads right after
// the COMMIT — on the same connection, on another one, inside a transaction block — see the write 30/30 (they wait
// for phase 2); with phase 2 held on shard 1, the COMMIT is answered, a read of shard 1 gets 40001 naming the shard and
// the transaction after atomic_visibility_timeout while shard 0 is read at once, and shard 1 shows the write once phase
// 2 ran; a proxy SIGKILLed after it answered COMMIT, before any COMMIT PREPARED, loses nothing: recovery (another
// proxy's) commits the transaction.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { testServers } from '../helpers/pg-servers.js';
import { ProxyProcess } from '../helpers/proxy-process.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients } from '../helpers/sharding.js';
import { BANK_SCHEMA, BANK_SHARDING_TOML, bankAccounts, INITIAL_BALANCE } from '../fault/bank-workload.js';

const TIMEOUT_MS = 1_500;
const MIN_AGE_MS = 2_000;
const RECOVERY_INTERVAL_MS = 500;
const PER_SHARD = 5;
const accounts = bankAccounts(PER_SHARD);
const FROM = accounts[0][0]; // on shard 0: the decision shard of a transfer writing shards 0 and 1
const TO = accounts[1][0]; // on shard 1: prepared, committed in phase 2

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let root: string;
const clients: pg.Client[] = [];

function replyGeneral(instanceId: string): string {
  return (
    `two_phase_commit = true\ntwo_phase_commit_auto = true\natomic_visibility = true\n` +
    `two_phase_commit_reply = "at_decision"\ninstance_id = "${instanceId}"\n` +
    `atomic_visibility_timeout = ${TIMEOUT_MS}\ntwo_phase_commit_orphan_timeout = ${MIN_AGE_MS}\n` +
    `two_phase_commit_recovery_interval = ${RECOVERY_INTERVAL_MS}`
  );
}

async function connect(url = proxy.url): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

async function transfer(c: pg.Client, amount: number): Promise<void> {
  await c.query('begin');
  await c.query('update accounts set balance = balance - $1 where id = $2', [amount, FROM]);
  await c.query('update accounts set balance = balance + $1 where id = $2', [amount, TO]);
  await c.query('commit');
}

/** A single-shard read of one account's balance. */
async function balance(c: pg.Client, id: number | bigint): Promise<number> {
  const r = await c.query<{ balance: string }>('select balance from accounts where id = $1', [id]);
  return Number(r.rows[0].balance);
}

async function balanceOnShard(shard: number, id: number | bigint): Promise<number> {
  const r = await direct[shard].query<{ balance: string }>('select balance from accounts where id = $1', [
    id,
  ]);
  return Number(r.rows[0].balance);
}

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function preparedCount(): Promise<number> {
  let n = 0;
  for (const d of direct) n += (await d.query('select 1 from pg_prepared_xacts')).rowCount ?? 0;
  return n;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
  }
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-reply-'));
  proxy = await startTestProxy(cluster, {
    general: replyGeneral('reply_main'),
    extraPgdog: BANK_SHARDING_TOML(APP_DB),
  });
}, 120_000);

afterEach(() => clearFailpoints());

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await proxy?.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe('two_phase_commit_reply = "at_decision"', () => {
  it('reads through the proxy right after COMMIT see the write, 30/30, though phase 2 is slowed down', async () => {
    const writer = await connect();
    const other = await connect();
    // Phase 2 starts 40 ms after the client's answer: a read not waiting for it would see shard 1 without the write.
    setFailpoint('before_commit_prepared', { kind: 'sleep', ms: 40 });
    let seen = 0;
    for (let i = 0; i < 30; i++) {
      const from = await balanceOnShard(0, FROM);
      const to = await balanceOnShard(1, TO);
      await transfer(writer, 1);
      const reads = await Promise.all([
        balance(writer, TO),
        balance(writer, FROM),
        (async () => {
          if (i % 2 === 0) return balance(other, TO);
          await other.query('begin'); // inside a transaction block too
          const b = await balance(other, TO);
          await other.query('commit');
          return b;
        })(),
        balance(other, FROM),
      ]);
      if (reads[0] === to + 1 && reads[1] === from - 1 && reads[2] === to + 1 && reads[3] === from - 1)
        seen++;
    }
    expect(seen).toBe(30);
    await until(async () => (await preparedCount()) === 0, 5_000, 'phase 2 of every transfer');
  }, 60_000);

  it('answers COMMIT while phase 2 is held on shard 1; reads of shard 1 wait, then get 40001 naming it', async () => {
    const writer = await connect();
    const reader = await connect();
    const before = await balanceOnShard(1, TO);
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    setFailpoint('before_commit_prepared', { kind: 'call', fn: () => held });
    try {
      await transfer(writer, 5); // answered: the decision shard committed, shard 1 is only prepared
      expect(await balanceOnShard(1, TO)).toBe(before); // phase 2 has not run there
      expect(await balance(reader, FROM)).toBe(await balanceOnShard(0, FROM)); // shard 0 (decided): read at once
      const t0 = performance.now();
      const err = (await balance(reader, TO).catch((e: unknown) => e)) as pg.DatabaseError;
      const waitedMs = performance.now() - t0;
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('40001');
      expect(err.message).toMatch(/shard 1 .*atomic_visibility_timeout \(1500 ms\)/);
      expect(err.detail).toMatch(/shard 1: COMMIT PREPARED of transaction \S+ is not finished/);
      expect(waitedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50); // it waited for the bound, not refused at once
      release();
      await until(async () => (await balanceOnShard(1, TO)) === before + 5, 5_000, 'phase 2 on shard 1');
      expect(await balance(reader, TO)).toBe(before + 5);
    } finally {
      release();
    }
  }, 60_000);

  it('a read waiting for phase 2 is not idle: client_idle_timeout does not close it (regression)', async () => {
    // client_idle_timeout shorter than atomic_visibility_timeout: the read below waits longer than the idle timeout
    // with nothing on its socket. It used to be closed with 57P05 as if it were idle; it must get its 40001.
    const idleProxy = await startTestProxy(cluster, {
      general: `${replyGeneral('reply_idle')}\nclient_idle_timeout = 600`,
      extraPgdog: BANK_SHARDING_TOML(APP_DB),
    });
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    try {
      const writer = await connect(idleProxy.url);
      const before = await balanceOnShard(1, TO);
      setFailpoint('before_commit_prepared', { kind: 'call', fn: () => held });
      await transfer(writer, 2);
      const reader = await connect(idleProxy.url); // now: idle for less than the timeout before its read
      const err = (await balance(reader, TO).catch((e: unknown) => e)) as pg.DatabaseError;
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('40001');
      release();
      await until(async () => (await balanceOnShard(1, TO)) === before + 2, 5_000, 'phase 2 on shard 1');
      // Idle afterwards, it is closed as before.
      const lateErrors: Error[] = [];
      reader.on('error', (e) => lateErrors.push(e));
      await until(async () => lateErrors.length > 0, 5_000, 'the idle reader to be closed');
      expect((lateErrors[0] as pg.DatabaseError).code).toBe('57P05');
    } finally {
      release();
      await idleProxy.close();
    }
  }, 60_000);

  it('a proxy killed after it answered COMMIT loses nothing: recovery commits the transaction', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'dying-'));
    const dying = await ProxyProcess.create(cluster, {
      dir,
      general: replyGeneral('reply_dying'),
      extraPgdog: BANK_SHARDING_TOML(APP_DB),
    });
    // The first COMMIT PREPARED after an answered COMMIT kills the process (a real kill -9).
    await dying.start({ SHARDGATE_FAILPOINTS: 'before_commit_prepared=kill' });
    try {
      const c = await connect(dying.url);
      const from = await balanceOnShard(0, FROM);
      const to = await balanceOnShard(1, TO);
      await transfer(c, 7); // resolves: the client heard COMMIT
      await dying.waitForExit();
      expect(dying.isRunning).toBe(false);
      expect(await balanceOnShard(0, FROM)).toBe(from - 7); // the decision shard committed
      // The in-process proxy's recovery (another instance) finds the prepared branch and its `true` decision row.
      await until(async () => (await preparedCount()) === 0, MIN_AGE_MS + 10_000, 'recovery of the branch');
      expect(await balanceOnShard(1, TO)).toBe(to + 7);
      const reader = await connect();
      expect(await balance(reader, TO)).toBe(to + 7);
    } finally {
      if (dying.isRunning) await dying.kill9();
    }
  }, 60_000);
});

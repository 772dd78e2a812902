// A server connection terminated under a client (pg_terminate_backend): the client gets the server's own FATAL
// ErrorResponse byte for byte, then the close — in session mode, inside a transaction and during a statement in
// transaction mode, and on a sharded database for the shard that died. Between transactions in transaction mode the
// dead server is replaced and the client never notices. The reference bytes come from a direct connection to the
// same server terminated the same way.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { query } from '../../src/protocol/messages.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient, type RawMessage } from '../helpers/raw-client.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const LOGIN = { user: APP_USER, database: APP_DB };

let cluster: PgCluster;
/** Direct connections to each server, to terminate backends and watch pg_stat_activity. */
let direct: pg.Client[];
let sessionMode: TestProxy;
let transactionMode: TestProxy;
let sharded: TestProxy;

/** The whole frame of a message read by RawClient (type byte, length, body). */
function frameOf(m: RawMessage): Buffer {
  const out = Buffer.alloc(5 + m.body.length);
  out.write(m.type, 0, 'latin1');
  out.writeInt32BE(4 + m.body.length, 1);
  m.body.copy(out, 5);
  return out;
}

/** The int in the first column of the first DataRow. */
function firstInt(messages: RawMessage[]): number {
  const row = messages.find((m) => m.type === 'D');
  if (row === undefined) throw new Error(`no row in ${messages.map((m) => m.type).join('')}`);
  return Number(row.body.toString('utf8', 6));
}

async function terminate(shard: number, pid: number): Promise<void> {
  const r = await direct[shard].query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
  expect(r.rows[0].ok).toBe(true);
}

/** Everything the client receives until the connection closes (throws if it stays open). */
async function untilClosed(raw: RawClient): Promise<RawMessage[]> {
  const out: RawMessage[] = [];
  for (;;) {
    try {
      out.push(await raw.readMessage(5_000));
    } catch (err) {
      if (!raw.closed) throw err;
      return out;
    }
  }
}

async function loggedIn(port: number): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  await raw.login(LOGIN, APP_PASSWORD);
  return raw;
}

/** The bytes PostgreSQL itself sends a client whose backend is terminated while idle / during pg_sleep. */
async function referenceFatal(isRunning: boolean): Promise<Buffer> {
  const raw = await loggedIn(cluster.servers[0].port);
  try {
    const pid = firstInt(await raw.query('select pg_backend_pid()'));
    if (isRunning) raw.write(query('select pg_sleep(30)'));
    await waitUntilRunning(0, pid, isRunning);
    await terminate(0, pid);
    const got = await untilClosed(raw);
    const errors = got.filter((m) => m.type === 'E');
    expect(errors).toHaveLength(1);
    return frameOf(errors[0]);
  } finally {
    raw.close();
  }
}

/** Wait until backend `pid` runs a statement (or is idle, when `isRunning` is false). */
async function waitUntilRunning(shard: number, pid: number, isRunning: boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await direct[shard].query<{ state: string }>(
      'select state from pg_stat_activity where pid = $1',
      [pid],
    );
    const state = r.rows[0]?.state ?? '';
    if (isRunning ? state === 'active' : state !== 'active') return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`backend ${pid} never reached the expected state`);
}

async function waitUntilGone(shard: number, pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await direct[shard].query('select 1 from pg_stat_activity where pid = $1', [pid]);
    if (r.rowCount === 0) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`backend ${pid} did not exit`);
}

/** The client's messages end with exactly `fatal` and nothing after it, then the close. */
function expectServerFatal(got: RawMessage[], fatal: Buffer): void {
  const errors = got.filter((m) => m.type === 'E');
  expect(errors.map((e) => frameOf(e).toString('hex'))).toEqual([fatal.toString('hex')]);
  expect(got[got.length - 1].type).toBe('E');
}

let idleFatal: Buffer;
let runningFatal: Buffer;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  sessionMode = await startTestProxy(cluster, { shards: 1, general: 'pooler_mode = "session"' });
  transactionMode = await startTestProxy(cluster, { shards: 1, userExtra: 'pool_size = 1' });
  sharded = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
  for (const c of direct) await c.query('create table users (id bigint primary key, name text)');
  idleFatal = await referenceFatal(false);
  runningFatal = await referenceFatal(true);
  expect(idleFatal.toString('latin1')).toContain('57P01');
});

afterAll(async () => {
  for (const c of direct ?? []) await c.end();
  await sessionMode?.close();
  await transactionMode?.close();
  await sharded?.close();
  await cluster?.stop();
});

describe('a server connection terminated under its client', () => {
  it('session mode, idle between statements: the server`s FATAL byte for byte, then the close', async () => {
    const raw = await loggedIn(sessionMode.port);
    try {
      const pid = firstInt(await raw.query('select pg_backend_pid()'));
      await terminate(0, pid);
      expectServerFatal(await untilClosed(raw), idleFatal);
    } finally {
      raw.close();
    }
  });

  it('transaction mode, inside a transaction: the server`s FATAL, then the close', async () => {
    const raw = await loggedIn(transactionMode.port);
    try {
      const pid = firstInt(await raw.query('begin; select pg_backend_pid()'));
      await terminate(0, pid);
      expectServerFatal(await untilClosed(raw), idleFatal);
    } finally {
      raw.close();
    }
  });

  it('transaction mode, during a statement: its replies so far, the server`s FATAL, then the close', async () => {
    const raw = await loggedIn(transactionMode.port);
    try {
      const pid = firstInt(await raw.query('select pg_backend_pid()'));
      // pool_size = 1: the next statement runs on the same server.
      raw.write(query('select pg_sleep(30)'));
      await waitUntilRunning(0, pid, true);
      await terminate(0, pid);
      const got = await untilClosed(raw);
      expect(got.map((m) => m.type).join('')).toBe('TE'); // RowDescription came before the sleep
      expectServerFatal(got, runningFatal);
    } finally {
      raw.close();
    }
  });

  it('transaction mode, between transactions: the dead server is replaced and the client never notices', async () => {
    const raw = await loggedIn(transactionMode.port);
    try {
      const first = firstInt(await raw.query('select pg_backend_pid()'));
      await terminate(0, first);
      await waitUntilGone(0, first);
      // pool_size = 1: only the dead connection was in the pool.
      const again = await raw.query('select pg_backend_pid()');
      expect(again.map((m) => m.type).join('')).toBe('TDCZ');
      expect(firstInt(again)).not.toBe(first);
    } finally {
      raw.close();
    }
  });

  it('sharded, a transaction on one shard: that shard`s FATAL byte for byte, then the close', async () => {
    const raw = await loggedIn(sharded.port);
    try {
      const id = idOn(1, 1);
      await raw.query(`begin; insert into users values (${id}, 'x')`);
      const pid = firstInt(await raw.query(`select pg_backend_pid() /* shardgate: shard=1 */`));
      await terminate(1, pid);
      expectServerFatal(await untilClosed(raw), idleFatal);
    } finally {
      raw.close();
    }
    // Nothing of the transaction was committed.
    const r = await direct[1].query('select count(*)::int as n from users where id = $1', [idOn(1, 1)]);
    expect(r.rows[0].n).toBe(0);
  });

  it('sharded, a statement running on every shard: the FATAL of the shard that died, then the close', async () => {
    const raw = await loggedIn(sharded.port);
    try {
      await direct[0].query('insert into users values ($1, $2)', [idOn(0, 1000), 'zero']);
      await direct[1].query('insert into users values ($1, $2)', [idOn(1, 1000), 'one']);
      raw.write(query('select id, pg_sleep(30) from users'));
      // The fan-out reaches both shards; find the one on shard 1 and terminate it.
      let pid = 0;
      for (let i = 0; i < 300 && pid === 0; i++) {
        const r = await direct[1].query<{ pid: number }>(
          "select pid from pg_stat_activity where usename = $1 and query like 'select id, pg_sleep(30)%'",
          [APP_USER],
        );
        pid = r.rows[0]?.pid ?? 0;
        if (pid === 0) await new Promise((res) => setTimeout(res, 10));
      }
      expect(pid).not.toBe(0);
      await terminate(1, pid);
      const got = await untilClosed(raw);
      expectServerFatal(got, runningFatal);
    } finally {
      raw.close();
    }
  });
});

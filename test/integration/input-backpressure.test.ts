// A client that keeps sending while what it sent cannot run — pipelined queries behind a statement blocked on a lock,
// without reading a reply; COPY data for a server that is not reading — makes the proxy stop reading its socket: the
// bytes the proxy has read stop growing far below what the client tries to send, other clients are served meanwhile,
// and once the lock is gone everything the client sent runs, in order, intact. Unsharded and sharded.
import { once } from 'node:events';
import type net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import type { ClientSession } from '../../src/frontend/client-session.js';
import { FrameReader } from '../../src/protocol/frame-reader.js';
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
import { RawClient, frame } from '../helpers/raw-client.js';
import { directShardClients, USERS_SHARDING_TOML } from '../helpers/sharding.js';

const MIB = 1024 * 1024;
/** What the client tries to send in each scenario. */
const TOTAL_BYTES = 64 * MIB;
/**
 * The most the proxy may have read meanwhile: its own 1 MiB bound, one read, and what the kernel's socket buffers
 * toward the server take (a few MiB; a sharded session sends nothing but the request in flight).
 */
const READ_BOUND_BYTES = 16 * MIB;

let cluster: PgCluster;
let direct: pg.Client[];
let unsharded: TestProxy;
let sharded: TestProxy;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const c of direct) {
    await c.query('create table bp_lock (id int)');
    await c.query('create table bp_copy (id int, payload text)');
  }
  unsharded = await startTestProxy(cluster, { shards: 1 });
  sharded = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
});

afterAll(async () => {
  for (const c of direct ?? []) await c.end();
  await unsharded?.close();
  await sharded?.close();
  await cluster?.stop();
});

/** The proxy's session of `raw` (matched by the client's port). */
function sessionOf(proxy: TestProxy, raw: RawClient): ClientSession {
  const port = raw.socket.localPort;
  for (const s of proxy.proxy.clients) if (s.describe().remotePort === port) return s;
  throw new Error('no session for this client');
}

/** Writes `chunk` until `total` bytes are sent, waiting for 'drain' whenever the socket is full. */
function keepWriting(
  socket: net.Socket,
  chunk: Buffer,
  total: number,
): { sent: () => number; done: Promise<void> } {
  let sent = 0;
  const done = (async () => {
    while (sent < total) {
      sent += chunk.length;
      if (!socket.write(chunk)) await once(socket, 'drain');
    }
  })();
  return { sent: () => sent, done };
}

/** Polls the proxy's read count for `session` until it stops changing (or reaches `total`); returns it. */
async function readsSettle(session: ClientSession, total: number): Promise<number> {
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 200; i++) {
    const now = session.describe().bytesReceived;
    if (now >= total) return now;
    stable = now === last ? stable + 1 : 0;
    if (stable >= 5) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

/** Counts ReadyForQuery replies (and CommandComplete tags) in what `raw` receives until `expected` have come. */
function countReplies(raw: RawClient, expected: number): Promise<string[]> {
  const socket = raw.socket;
  socket.removeAllListeners('data');
  const reader = new FrameReader(1 << 30);
  const tags: string[] = [];
  let ready = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      const err = reader.push(c, (type, f) => {
        if (type === 0x43) tags.push(f.toString('utf8', 5, f.length - 1));
        if (type === 0x45) reject(new Error(`error reply: ${f.toString('utf8', 5)}`));
        if (type === 0x5a && ++ready === expected) resolve(tags);
      });
      if (err !== null) reject(new Error(err));
    });
  });
}

async function otherClientWorks(proxy: TestProxy): Promise<void> {
  const other = new pg.Client({ connectionString: proxy.url });
  await other.connect();
  try {
    expect((await other.query('select 41 + 1 as n')).rows[0].n).toBe(42);
  } finally {
    await other.end();
  }
}

/** Hold an ACCESS EXCLUSIVE lock on `table` on every shard until the returned function is called. */
async function lockEverywhere(table: string): Promise<() => Promise<void>> {
  for (const c of direct) {
    await c.query('begin');
    await c.query(`lock table ${table} in access exclusive mode`);
  }
  return async () => {
    for (const c of direct) await c.query('commit');
  };
}

/** A simple Query of about 1 KiB. */
const PIPELINED = query(`select 1 as one -- ${'x'.repeat(1000)}`);

async function pipelineScenario(proxy: TestProxy, totalBytes: number, boundBytes: number): Promise<void> {
  const unlock = await lockEverywhere('bp_lock');
  const raw = await RawClient.connect(proxy.port);
  try {
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const count = Math.floor(totalBytes / PIPELINED.length);
    const replies = countReplies(raw, count + 1);
    raw.socket.pause(); // replies are not read while the client sends
    raw.write(query('select count(*) from bp_lock')); // blocks on the lock
    const writer = keepWriting(raw.socket, PIPELINED, count * PIPELINED.length);
    const read = await readsSettle(sessionOf(proxy, raw), totalBytes);
    expect(read, 'bytes the proxy read from a client whose requests cannot run').toBeLessThan(boundBytes);
    expect(writer.sent(), 'the client is held back by the full socket').toBeLessThan(totalBytes);
    await otherClientWorks(proxy);
    await unlock();
    raw.socket.resume();
    await writer.done;
    const tags = await replies;
    expect(tags).toHaveLength(count + 1);
    expect(tags.every((t) => t === 'SELECT 1')).toBe(true);
  } finally {
    raw.close();
  }
}

describe('a client that sends faster than its requests can run', () => {
  it('unsharded: pipelined queries behind a blocked statement stop being read; all run after', async () => {
    await pipelineScenario(unsharded, TOTAL_BYTES, READ_BOUND_BYTES);
  });

  // Its tens of thousands of requests each run on their own once unblocked: on a loaded machine that alone can take
  // longer than the default 30 s (a slow run, not a hang: every reply is counted).
  it(
    'sharded: the queue behind the request in flight is bounded the same way',
    { timeout: 120_000 },
    async () => {
      // Fewer requests (each is routed on its own, which takes longer); the bound is the queue's 1 MiB and one read.
      await pipelineScenario(sharded, 16 * MIB, 4 * MIB);
    },
  );

  it('unsharded COPY into a table the server cannot write yet: data stops being read, then all rows arrive', async () => {
    const unlock = await lockEverywhere('bp_copy');
    const raw = await RawClient.connect(unsharded.port);
    try {
      await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const rows = Array.from({ length: 600 }, (_, i) => `${i}\t${'y'.repeat(100)}\n`).join('');
      const data = frame('d', rows);
      const chunks = Math.floor(TOTAL_BYTES / data.length);
      const done = countReplies(raw, 1);
      raw.write(query('copy bp_copy from stdin'));
      const writer = keepWriting(raw.socket, data, chunks * data.length);
      const read = await readsSettle(sessionOf(unsharded, raw), TOTAL_BYTES);
      expect(read).toBeLessThan(READ_BOUND_BYTES);
      expect(writer.sent()).toBeLessThan(TOTAL_BYTES);
      await otherClientWorks(unsharded);
      await unlock();
      await writer.done;
      raw.write(frame('c'));
      expect(await done).toEqual([`COPY ${chunks * 600}`]);
    } finally {
      raw.close();
    }
  });
});

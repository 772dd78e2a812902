// Backpressure across shards (2-shard proxy, real PostgreSQL): a client that stops reading a ~100 MB cross-shard result
// (with and without ORDER BY) leaves every shard's backend blocked in ClientWrite instead of the proxy buffering the
// result, other clients are served meanwhile, and the whole result then arrives intact; an ORDER BY merge waiting for a
// shard (held by a lock) stops reading the other shard once its merge queue is full; a COPY … FROM STDIN whose shard
// stops consuming (lock) stops the proxy reading the client, then completes with the right counts.
import { createHash } from 'node:crypto';
import type net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { query } from '../../src/protocol/messages.js';
import { FrameReader } from '../../src/protocol/frame-reader.js';
import { MERGE_QUEUE_MAX_ROWS } from '../../src/execute/reply-merger.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { frame, RawClient } from '../helpers/raw-client.js';
import { directShardClients, userShard } from '../helpers/sharding.js';

const BACKPRESSURE_SHARDING_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "bp_rows"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "bp_copy"
column = "id"
data_type = "bigint"
`;

/** Rows per shard: ~150-byte DataRows, ~105 MB for both. Shard 0 holds ids 1..N, shard 1 ids N+1..2N. */
const ROWS_PER_SHARD = 350_000;
const TOTAL_ROWS = 2 * ROWS_PER_SHARD;
const SCAN_SQL = 'select id, payload from bp_rows';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let admin: pg.Client;

const payloadOf = (id: number): string => createHash('md5').update(String(id)).digest('hex').repeat(4);

/** The shard backends running a statement on `table` for the proxy: their wait events (null when not waiting). */
async function proxyBackends(
  shard: number,
  table: string,
): Promise<{ pid: number; waitType: string | null; wait: string | null }[]> {
  const { rows } = await direct[shard].query<{
    pid: number;
    wait_event_type: string | null;
    wait_event: string | null;
  }>(
    `select pid, wait_event_type, wait_event from pg_stat_activity
      where pid <> pg_backend_pid() and state = 'active' and query like $1`,
    [`%${table}%`],
  );
  return rows.map((r) => ({ pid: r.pid, waitType: r.wait_event_type, wait: r.wait_event }));
}

/** Bytes the proxy has read from each of its server connections so far, by backend pid (admin SHOW SERVERS). */
async function proxyBytesByPid(): Promise<Map<number, number>> {
  const { rows } = await admin.query<{ backend_pid: string; bytes_received: string }>('SHOW SERVERS');
  return new Map(rows.map((r) => [Number(r.backend_pid), Number(r.bytes_received)]));
}

/** Bytes the proxy has read from the server connection to backend `pid`. */
async function proxyBytesFrom(pid: number): Promise<number> {
  const bytes = (await proxyBytesByPid()).get(pid);
  if (bytes === undefined) throw new Error(`no server connection to backend ${pid}`);
  return bytes;
}

/**
 * `shard`'s backend running a statement on `table` ends up blocked writing to the proxy for good: two looks 1.5 s
 * apart both find it in ClientWrite with not one byte more read by the proxy (a proxy merely slower than the shard
 * shows progress, or the statement ends). Gives up after `timeoutMs`.
 */
async function expectStalled(shard: number, table: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: { pid: number; bytes: number } | null = null;
  while (Date.now() < deadline) {
    const backends = await proxyBackends(shard, table);
    const blocked = backends.length === 1 && backends[0].wait === 'ClientWrite' ? backends[0] : null;
    const now = blocked === null ? null : { pid: blocked.pid, bytes: await proxyBytesFrom(blocked.pid) };
    if (now !== null && last !== null && now.pid === last.pid && now.bytes === last.bytes) return;
    last = now;
    await new Promise((r) => setTimeout(r, now === null ? 100 : 1_500));
  }
  expect.fail(`shard ${shard}: the proxy kept reading (or the statement ended) for ${timeoutMs} ms`);
}

/** A client straight to `shard`'s server (not through the proxy). */
async function directClient(shard: number): Promise<pg.Client> {
  const s = cluster.servers[shard];
  const client = new pg.Client({
    host: s.host,
    port: s.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
  });
  await client.connect();
  return client;
}

/** Poll until `shard` has a backend for `table` waiting on `wait` (an event or its type); false after `timeoutMs`. */
async function waitForBackend(
  shard: number,
  table: string,
  wait: string,
  timeoutMs = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const backends = await proxyBackends(shard, table);
    if (backends.some((b) => b.wait === wait || b.waitType === wait)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Checks a `select id, payload` reply as it streams in: every id once, payloads intact, order when asked. */
class ResultCheck {
  rows = 0;
  badPayloads = 0;
  outOfOrder = 0;
  duplicates = 0;
  tag = '';
  errors: string[] = [];
  isDone = false;
  private lastId = 0;
  private readonly seen = new Uint8Array(TOTAL_ROWS + 1);
  private readonly reader = new FrameReader(1 << 30);

  constructor(private readonly isOrdered: boolean) {}

  push(chunk: Buffer): void {
    const err = this.reader.push(chunk, (type, f) => this.onFrame(type, f));
    if (err !== null) this.errors.push(err);
  }

  private onFrame(type: number, f: Buffer): void {
    if (type === 0x44) {
      let p = 7;
      const l1 = f.readInt32BE(p);
      const id = Number(f.toString('latin1', p + 4, p + 4 + l1));
      p += 4 + l1;
      const l2 = f.readInt32BE(p);
      if (f.toString('latin1', p + 4, p + 4 + l2) !== payloadOf(id)) this.badPayloads++;
      if (this.isOrdered && id <= this.lastId) this.outOfOrder++;
      this.lastId = id;
      if (id < 1 || id > TOTAL_ROWS || this.seen[id]++ !== 0) this.duplicates++;
      this.rows++;
    } else if (type === 0x43) {
      this.tag = f.toString('utf8', 5, f.length - 1);
    } else if (type === 0x45) {
      this.errors.push(f.toString('utf8', 5));
    } else if (type === 0x5a) {
      this.isDone = true;
    }
  }
}

/** A logged-in raw client whose replies go to `onData` (RawClient's own buffering is bypassed). */
async function rawSession(onData: (chunk: Buffer) => void): Promise<RawClient> {
  const raw = await RawClient.connect(proxy.port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  raw.socket.removeAllListeners('data');
  raw.socket.on('data', onData);
  return raw;
}

function until(isDone: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (isDone()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`not done after ${timeoutMs} ms`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

/** Another client through the proxy: a fan-out count and a plain query both answer. */
async function otherClientIsServed(): Promise<void> {
  const other = new pg.Client({ connectionString: proxy.url });
  await other.connect();
  try {
    expect((await other.query('select 1 as one')).rows[0].one).toBe(1);
    expect(Number((await other.query('select count(*) as n from bp_rows')).rows[0].n)).toBe(TOTAL_ROWS);
  } finally {
    await other.end();
  }
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: BACKPRESSURE_SHARDING_TOML });
  direct = await directShardClients(cluster);
  admin = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    user: 'admin',
    password: 'admin',
    database: 'admin',
  });
  await admin.connect();
  const setup = new pg.Client({ connectionString: proxy.url });
  await setup.connect();
  await setup.query('create table bp_rows (id bigint primary key, payload text not null)');
  await setup.query('create table bp_copy (id bigint primary key, payload text not null)');
  await setup.end();
  // Straight into each shard (a keyless SELECT reads every shard whatever the ids): shard 0 gets the lower half.
  await Promise.all(
    direct.map(async (d, shard) => {
      await d.query(
        `insert into bp_rows select i, repeat(md5(i::text), 4) from generate_series($1::bigint, $2::bigint) i`,
        [shard * ROWS_PER_SHARD + 1, (shard + 1) * ROWS_PER_SHARD],
      );
      await d.query('vacuum analyze bp_rows');
    }),
  );
}, 120_000);

afterAll(async () => {
  await admin?.end();
  for (const d of direct ?? []) await d.end();
  await proxy?.close();
  await cluster?.stop();
});

describe('fan-out backpressure', () => {
  for (const isOrdered of [false, true]) {
    it(`a client that stops reading ${isOrdered ? 'an ORDER BY' : 'a'} cross-shard result holds every shard in ClientWrite, then gets it all intact`, async () => {
      const check = new ResultCheck(isOrdered);
      const raw = await rawSession((c) => check.push(c));
      try {
        raw.socket.pause();
        raw.write(query(isOrdered ? `${SCAN_SQL} order by id` : SCAN_SQL));
        // The proxy stops reading the shards: their backends block writing to it, with most of the result unsent.
        await expectStalled(0, 'bp_rows');
        await expectStalled(1, 'bp_rows');
        await otherClientIsServed();
        raw.socket.resume();
        await until(() => check.isDone, 90_000);
      } finally {
        raw.close();
      }
      expect(check.errors).toEqual([]);
      expect(check.tag).toBe(`SELECT ${TOTAL_ROWS}`);
      expect(check.rows).toBe(TOTAL_ROWS);
      expect(check.duplicates).toBe(0);
      expect(check.badPayloads).toBe(0);
      expect(check.outOfOrder).toBe(0);
    }, 150_000);
  }

  it('an ORDER BY merge waiting for a locked shard stops reading the other once its merge queue is full', async () => {
    const locker = await directClient(0);
    const check = new ResultCheck(true);
    const raw = await rawSession((c) => check.push(c));
    try {
      await locker.query('begin');
      await locker.query('lock table bp_rows in access exclusive mode');
      const readBefore = await proxyBytesByPid();
      raw.write(query(`${SCAN_SQL} order by id`));
      expect(await waitForBackend(0, 'bp_rows', 'Lock')).toBe(true);
      // Shard 1 streams into the merge queue until its bound, then the proxy stops reading it (client reading all along).
      await expectStalled(1, 'bp_rows');
      expect(check.rows).toBe(0); // shard 0 holds the smallest ids: nothing can go out yet
      // Of shard 1's ~52 MB, the proxy read about one merge queue's worth (10,000 rows of ~150 bytes), not more.
      const [shard1] = await proxyBackends(1, 'bp_rows');
      const read = (await proxyBytesFrom(shard1.pid)) - (readBefore.get(shard1.pid) ?? 0);
      expect(read).toBeGreaterThan(MERGE_QUEUE_MAX_ROWS * 100);
      expect(read).toBeLessThan(MERGE_QUEUE_MAX_ROWS * 150 + 256 * 1024);
      await locker.query('commit');
      await until(() => check.isDone, 90_000);
    } finally {
      raw.close();
      await locker.end();
    }
    expect(check.errors).toEqual([]);
    expect(check.tag).toBe(`SELECT ${TOTAL_ROWS}`);
    expect(check.rows).toBe(TOTAL_ROWS);
    expect(check.duplicates).toBe(0);
    expect(check.badPayloads).toBe(0);
    expect(check.outOfOrder).toBe(0);
  }, 150_000);
});

describe('COPY FROM STDIN backpressure', () => {
  /** ~72-byte text rows, 64 KiB CopyData messages; `perShard` counts where each row belongs. */
  function copyMessages(totalBytes: number, perShard: number[]): Buffer[] {
    const out: Buffer[] = [];
    let id = 0;
    let bytes = 0;
    while (bytes < totalBytes) {
      let text = '';
      while (text.length < 64 * 1024) {
        id++;
        perShard[userShard(id)]++;
        text += `${id}\t${payloadOf(id).slice(0, 64)}\n`;
      }
      const message = frame('d', text);
      out.push(message);
      bytes += message.length;
    }
    return out;
  }

  it('a shard that stops consuming (lock) stops the proxy reading the client; the COPY completes after', async () => {
    const perShard = [0, 0];
    const messages = copyMessages(96 * 1024 * 1024, perShard);
    const locker = await directClient(1);
    const replies: Buffer[] = [];
    const raw = await rawSession((c) => replies.push(c));
    const socket = raw.socket;
    try {
      await locker.query('begin');
      await locker.query('lock table bp_copy in access exclusive mode');
      raw.write(query('copy bp_copy (id, payload) from stdin'));
      await until(() => Buffer.concat(replies).includes(Buffer.from('G')), 10_000); // CopyInResponse (shard 0's)
      expect(await waitForBackend(1, 'bp_copy', 'Lock')).toBe(true);

      // Write until the socket stops taking data for good: the proxy no longer reads this client.
      let sent = 0;
      let isStalled = false;
      while (sent < messages.length && !isStalled) {
        if (socket.write(messages[sent++])) continue;
        isStalled = !(await drainedWithin(socket, 3_000));
      }
      expect(isStalled).toBe(true);
      expect(sent).toBeLessThan(messages.length);
      const unsent = socket.writableLength;
      expect(unsent).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(socket.writableLength).toBe(unsent); // not one byte more taken meanwhile
      expect(await waitForBackend(1, 'bp_copy', 'Lock')).toBe(true);

      await locker.query('commit');
      expect(await drainedWithin(socket, 30_000)).toBe(true);
      while (sent < messages.length) {
        if (!socket.write(messages[sent++])) await drainedWithin(socket, 30_000);
      }
      socket.write(frame('c'));
      await until(() => Buffer.concat(replies).includes(Buffer.from([0x5a, 0, 0, 0, 5])), 90_000);
    } finally {
      raw.close();
      await locker.end();
    }
    const reply = Buffer.concat(replies).toString('latin1');
    const total = perShard[0] + perShard[1];
    expect(reply).toContain(`COPY ${total}\0`);
    expect(reply).not.toContain('ERROR');
    for (const shard of [0, 1]) {
      const { rows } = await direct[shard].query<{ n: string; bad: string }>(
        `select count(*) as n, count(*) filter (where payload <> left(repeat(md5(id::text), 4), 64)) as bad
           from bp_copy`,
      );
      expect(Number(rows[0].n)).toBe(perShard[shard]);
      expect(Number(rows[0].bad)).toBe(0);
    }
  }, 150_000);
});

/** True once `socket` emits 'drain' within `timeoutMs`. */
function drainedWithin(socket: net.Socket, timeoutMs: number): Promise<boolean> {
  if (socket.writableLength === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.removeListener('drain', onDrain);
      resolve(false);
    }, timeoutMs);
    const onDrain = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('drain', onDrain);
  });
}

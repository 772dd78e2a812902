// Server pools behind the proxy: checkout timeout, killed and unreachable servers, session reset, named
// statements under transaction pooling, min_pool_size, and clients that leave mid-transaction.
import net from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster, PgServer } from '../../src/testing/pg-cluster.js';
import { freePort } from '../../src/testing/free-port.js';
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
import { parseMessage, query } from '../../src/protocol/messages.js';

/** A second user, only for the min_pool_size test, so its server connections can be counted alone. */
const MIN_USER = { name: 'minpool', password: 'minpool-secret' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bind (unnamed portal) of `stmt` with text parameters, Execute, Sync. */
function bindExecuteSync(stmt: string, params: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`\0${stmt}\0`), Buffer.from([0, 0]), Buffer.alloc(2)];
  parts[2].writeInt16BE(params.length);
  for (const p of params) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(Buffer.byteLength(p));
    parts.push(len, Buffer.from(p));
  }
  parts.push(Buffer.from([0, 0]));
  return Buffer.concat([
    frame('B', Buffer.concat(parts)),
    frame('E', Buffer.from([0, 0, 0, 0, 0])),
    frame('S'),
  ]);
}

interface Tracked {
  client: pg.Client;
  errors: Error[];
}

function tracked(url: string): Tracked {
  const client = new pg.Client({ connectionString: url });
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  return { client, errors };
}

async function connected(url: string): Promise<pg.Client> {
  const { client } = tracked(url);
  await client.connect();
  return client;
}

async function elapsed<T>(
  p: Promise<T>,
): Promise<{ ms: number; result: T | null; error: (Error & { code?: string }) | null }> {
  const t0 = Date.now();
  try {
    const result = await p;
    return { ms: Date.now() - t0, result, error: null };
  } catch (e) {
    return { ms: Date.now() - t0, result: null, error: e as Error & { code?: string } };
  }
}

describe('pools', () => {
  let cluster: PgCluster;
  let server: PgServer;
  /** Superuser connection straight to the server (pg_stat_activity, pg_terminate_backend). */
  let admin: pg.Client;
  const proxies: TestProxy[] = [];
  const clients: pg.Client[] = [];

  async function proxyWith(opts: Parameters<typeof startTestProxy>[1]): Promise<TestProxy> {
    const p = await startTestProxy(cluster, opts);
    proxies.push(p);
    return p;
  }

  async function client(url: string): Promise<pg.Client> {
    const c = await connected(url);
    clients.push(c);
    return c;
  }

  async function backendPid(c: pg.Client): Promise<number> {
    return (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
  }

  async function serverConnections(user: string): Promise<{ pid: number; state: string }[]> {
    const res = await admin.query<{ pid: number; state: string }>(
      "select pid, coalesce(state, '') as state from pg_stat_activity where usename = $1 and backend_type = 'client backend' order by pid",
      [user],
    );
    return res.rows;
  }

  async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return true;
      await sleep(50);
    }
    return check();
  }

  beforeAll(async () => {
    cluster = await testServers(1, { ...APP_SERVER_OPTIONS, users: [...APP_SERVER_OPTIONS.users, MIN_USER] });
    server = cluster.servers[0];
    admin = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.superuser,
      password: server.superuserPassword,
      database: 'postgres',
    });
    await admin.connect();
    const direct = new pg.Client({
      host: server.host,
      port: server.port,
      user: APP_USER,
      password: APP_PASSWORD,
      database: APP_DB,
    });
    await direct.connect();
    await direct.query('create table pool_marker (id int)');
    await direct.end();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined);
    for (const p of proxies.splice(0)) await p.close();
  });

  afterAll(async () => {
    await admin?.end();
    await cluster?.stop();
  });

  it('fails a checkout after checkout_timeout with a clear error, and the client recovers', async () => {
    const proxy = await proxyWith({ general: 'checkout_timeout = 300', userExtra: 'pool_size = 1' });
    const holder = await client(proxy.url);
    const waiter = await client(proxy.url);
    await holder.query('begin');
    await holder.query('select 1');
    const r = await elapsed(waiter.query('select 1'));
    expect(r.error).not.toBeNull();
    expect(r.error?.message).toMatch(/timed out .*waiting for a server connection/);
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(1_000);
    await holder.query('commit');
    const ok = await elapsed(waiter.query<{ n: number }>('select 42 as n'));
    expect(ok.error).toBeNull();
    expect(ok.result?.rows[0].n).toBe(42);
    expect(ok.ms).toBeLessThan(300);
  });

  it('fails an extended-protocol request after checkout_timeout and keeps the client in step', async () => {
    const proxy = await proxyWith({ general: 'checkout_timeout = 300', userExtra: 'pool_size = 1' });
    const holder = await client(proxy.url);
    const waiter = await client(proxy.url);
    await holder.query('begin');
    const r = await elapsed(waiter.query({ text: 'select $1::int as n', values: [1] }));
    expect(r.error?.message).toMatch(/timed out/);
    await holder.query('commit');
    const again = await waiter.query<{ n: number }>({ text: 'select $1::int as n', values: [2] });
    expect(again.rows[0].n).toBe(2);
  });

  it('does not hand the server to a client that left while waiting for it', async () => {
    const proxy = await proxyWith({ general: 'checkout_timeout = 2000', userExtra: 'pool_size = 1' });
    const holder = await client(proxy.url);
    await holder.query('begin');
    const quitter = tracked(proxy.url);
    await quitter.client.connect();
    void quitter.client.query('select 1').catch(() => undefined);
    await sleep(100);
    (
      quitter.client as unknown as { connection: { stream: { destroy(): void } } }
    ).connection.stream.destroy();
    await sleep(50);
    await holder.query('commit');
    const next = await client(proxy.url);
    const r = await elapsed(next.query<{ one: number }>('select 1 as one'));
    expect(r.error).toBeNull();
    expect(r.ms).toBeLessThan(500);
    expect((await holder.query<{ two: number }>('select 2 as two')).rows[0].two).toBe(2);
  });

  it('reports a server killed mid-transaction to its client (no hang), and replaces the connection', async () => {
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const victim = tracked(proxy.url);
    clients.push(victim.client);
    await victim.client.connect();
    await victim.client.query('begin');
    const pid = await backendPid(victim.client);
    const killed = await admin.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
    expect(killed.rows[0].ok).toBe(true);
    const r = await elapsed(victim.client.query('select 1'));
    expect(r.error, 'the query after the kill must fail').not.toBeNull();
    expect(r.ms).toBeLessThan(2_000);
    const codes = [...victim.errors, r.error].map((e) => (e as { code?: string } | null)?.code);
    expect(
      codes.some((c) => c === '57P01' || c === '08006'),
      `codes seen: ${codes.join(',')}`,
    ).toBe(true);

    const next = await client(proxy.url);
    const t0 = Date.now();
    const newPid = await backendPid(next);
    expect(newPid).not.toBe(pid);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('reports a server killed during a running query within 2 s', async () => {
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const victim = tracked(proxy.url);
    clients.push(victim.client);
    await victim.client.connect();
    const pid = await backendPid(victim.client);
    const running = elapsed(victim.client.query('select pg_sleep(10)'));
    await waitFor(
      async () => (await serverConnections(APP_USER)).some((s) => s.pid === pid && s.state === 'active'),
      2_000,
    );
    await admin.query('select pg_terminate_backend($1)', [pid]);
    const r = await running;
    expect(r.error).not.toBeNull();
    expect(r.ms).toBeLessThan(2_000);
    const next = await client(proxy.url);
    expect((await next.query('select 1 as one')).rows[0].one).toBe(1);
  });

  it('fails fast with the shard and the connect error when a server is unreachable', async () => {
    const closedPort = await freePort();
    const unreachable: PgCluster = {
      servers: [{ ...server, port: closedPort, dataDir: null, pid: null }],
      stop: async () => undefined,
      restart: async () => undefined,
    };
    const proxy = await startTestProxy(unreachable, {
      general: 'checkout_timeout = 3000\nconnect_timeout = 3000',
    });
    proxies.push(proxy);
    for (let attempt = 0; attempt < 2; attempt++) {
      const { client: c } = tracked(proxy.url);
      const r = await elapsed(c.connect());
      await c.end().catch(() => undefined);
      expect(r.error, 'login must fail').not.toBeNull();
      expect(r.ms).toBeLessThan(1_000);
      expect(r.error?.message).toMatch(/shard 0/);
      expect(r.error?.message).toMatch(/ECONNREFUSED/);
      expect(r.error?.message).toContain(String(closedPort));
    }
  });

  it('fails after connect_timeout, not checkout_timeout, when a server accepts but never answers', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s)); // accepts, reads, never writes
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const mute: PgCluster = {
        servers: [{ ...server, port, dataDir: null, pid: null }],
        stop: async () => undefined,
        restart: async () => undefined,
      };
      const proxy = await startTestProxy(mute, { general: 'checkout_timeout = 5000\nconnect_timeout = 400' });
      proxies.push(proxy);
      const { client: c } = tracked(proxy.url);
      const r = await elapsed(c.connect());
      await c.end().catch(() => undefined);
      expect(r.error, 'login must fail').not.toBeNull();
      expect(r.ms).toBeGreaterThanOrEqual(350);
      expect(r.ms).toBeLessThan(2_000);
      expect(r.error?.message).toMatch(/shard 0/);
      expect(r.error?.message).toMatch(/timeout/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('resets a session-mode server (DISCARD ALL) before the next client gets it', async () => {
    const proxy = await proxyWith({ general: 'pooler_mode = "session"', userExtra: 'pool_size = 1' });
    const first = await connected(proxy.url);
    await first.query("set application_name = 'sg_session_one'");
    await first.query('create temp table sg_session_tmp (x int)');
    await first.query("set search_path = 'pg_catalog'");
    const pid = await backendPid(first);
    await first.end();

    const second = await client(proxy.url);
    expect(await backendPid(second)).toBe(pid); // the same server connection, reused
    const app = await second.query<{ v: string }>("select current_setting('application_name') as v");
    expect(app.rows[0].v).toBe(''); // not 'sg_session_one'
    const path = await second.query<{ v: string }>("select current_setting('search_path') as v");
    expect(path.rows[0].v).toBe('"$user", public'); // the default again
    const tmp = await second.query<{ n: string }>(
      "select count(*) as n from pg_class where relname = 'sg_session_tmp' and relpersistence = 't'",
    );
    expect(tmp.rows[0].n).toBe('0');
  });

  it('keeps same-named prepared statements of different clients apart on one server (transaction mode)', async () => {
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await client(proxy.url);
    const b = await client(proxy.url);
    const runA = async (v: number): Promise<unknown> =>
      (await a.query({ name: 'q', text: 'select $1::int + 1 as v', values: [v] })).rows[0].v;
    const runB = async (v: string): Promise<unknown> =>
      (await b.query({ name: 'q', text: "select $1::text || '-b' as v", values: [v] })).rows[0].v;
    expect(await runA(1)).toBe(2);
    expect(await runB('x')).toBe('x-b');
    expect(await runA(5)).toBe(6);
    expect(await runB('y')).toBe('y-b');
    // Both clients at once, each in its own order, contending for the one server connection.
    const seqA = async (): Promise<unknown[]> => [await runA(10), await runA(20), await runA(30)];
    const seqB = async (): Promise<unknown[]> => [await runB('p'), await runB('q'), await runB('r')];
    expect(await Promise.all([seqA(), seqB()])).toEqual([
      [11, 21, 31],
      ['p-b', 'q-b', 'r-b'],
    ]);
    expect(await backendPid(a)).toBe(await backendPid(b)); // really one server connection

    // The server connection dies while idle: both clients' statements are prepared again on the new one.
    await admin.query('select pg_terminate_backend($1)', [await backendPid(a)]);
    await waitFor(async () => (await serverConnections(APP_USER)).length === 0, 2_000);
    await sleep(100);
    expect(await runA(7)).toBe(8);
    expect(await runB('z')).toBe('z-b');
    expect(await runA(8)).toBe(9);
  });

  it("keeps each client's session parameters when they share one server (transaction mode)", async () => {
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await client(proxy.url);
    const b = await client(proxy.url);
    const show = async (c: pg.Client, name: string): Promise<string> =>
      (await c.query<{ v: string }>('select current_setting($1) as v', [name])).rows[0].v;
    await a.query("set application_name = 'client_a'");
    await a.query("set timezone = 'Asia/Tokyo'");
    expect(await backendPid(a)).toBe(await backendPid(b));
    expect(await show(b, 'application_name')).not.toBe('client_a');
    expect(await show(b, 'timezone')).not.toBe('Asia/Tokyo');
    await b.query("set application_name = 'client_b'");
    expect(await show(a, 'application_name')).toBe('client_a');
    expect(await show(a, 'timezone')).toBe('Asia/Tokyo');
    expect(await show(b, 'application_name')).toBe('client_b');
  });

  it('prepares statements again on a replacement server with exactly the replies a client expects', async () => {
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await RawClient.connect(proxy.port);
    const b = await RawClient.connect(proxy.port);
    try {
      await a.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      await b.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const types = (ms: { type: string }[]): string => ms.map((m) => m.type).join('');
      const cell = (ms: { type: string; body: Buffer }[]): string => {
        const row = ms.find((m) => m.type === 'D');
        return row ? row.body.toString('utf8', 6) : '';
      };
      a.write(Buffer.concat([parseMessage('q', 'select $1::int * 2', Buffer.from([0, 0])), frame('S')]));
      expect(types(await a.readUntil('Z'))).toBe('1Z');
      b.write(Buffer.concat([parseMessage('q', "select $1::text || '!'", Buffer.from([0, 0])), frame('S')]));
      expect(types(await b.readUntil('Z'))).toBe('1Z');

      const pids = (await serverConnections(APP_USER)).map((s) => s.pid);
      expect(pids).toHaveLength(1);
      await admin.query('select pg_terminate_backend($1)', [pids[0]]);
      await waitFor(async () => (await serverConnections(APP_USER)).every((s) => s.pid !== pids[0]), 2_000);
      await sleep(100); // let the proxy notice the closed idle connection

      for (let round = 0; round < 2; round++) {
        a.write(bindExecuteSync('q', ['21']));
        const ra = await a.readUntil('Z');
        expect(types(ra)).toBe('2DCZ');
        expect(cell(ra)).toBe('42');
        b.write(bindExecuteSync('q', ['hi']));
        const rb = await b.readUntil('Z');
        expect(types(rb)).toBe('2DCZ');
        expect(cell(rb)).toBe('hi!');
      }
      // Closing a statement answers CloseComplete and forgets only this client's name.
      a.write(Buffer.concat([frame('C', 'Sq\0'), frame('S')]));
      expect(types(await a.readUntil('Z'))).toBe('3Z');
      a.write(bindExecuteSync('q', ['1']));
      const gone = await a.readUntil('Z');
      expect(types(gone)).toBe('EZ');
      b.write(bindExecuteSync('q', ['still']));
      expect(cell(await b.readUntil('Z'))).toBe('still!');
    } finally {
      a.close();
      b.close();
    }
  });

  it('re-prepares correctly when a Query precedes the Bind in the same write (regression)', async () => {
    // The injected Close/Parse replies must be swallowed after the Query's ReadyForQuery, not before it.
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await RawClient.connect(proxy.port);
    try {
      await a.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const types = (ms: { type: string }[]): string => ms.map((m) => m.type).join('');
      a.write(Buffer.concat([parseMessage('r', 'select $1::int + 1', Buffer.from([0, 0])), frame('S')]));
      expect(types(await a.readUntil('Z'))).toBe('1Z');
      const pids = (await serverConnections(APP_USER)).map((s) => s.pid);
      await admin.query('select pg_terminate_backend($1)', [pids[0]]);
      await waitFor(async () => (await serverConnections(APP_USER)).every((s) => s.pid !== pids[0]), 2_000);
      await sleep(100);
      a.write(Buffer.concat([query('select 7'), bindExecuteSync('r', ['41'])]));
      const first = await a.readUntil('Z');
      expect(types(first)).toBe('TDCZ');
      const second = await a.readUntil('Z');
      expect(types(second)).toBe('2DCZ');
      expect(second.find((m) => m.type === 'D')?.body.toString('utf8', 6)).toBe('42');
    } finally {
      a.close();
    }
  });

  it('keeps the server while a pipelined extended request is still open after an idle ReadyForQuery (regression)', async () => {
    // Query + (Parse, Describe, Flush) in one write: the Query's ReadyForQuery is idle, but the Parse/Describe
    // replies and the later Sync belong to this client; the server must not go back to the pool in between.
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await RawClient.connect(proxy.port);
    const b = await RawClient.connect(proxy.port);
    try {
      await a.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      await b.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const types = (ms: { type: string }[]): string => ms.map((m) => m.type).join('');
      a.write(
        Buffer.concat([
          query('select 1'),
          parseMessage('', 'select $1::int * 3', Buffer.from([0, 0])),
          frame('D', 'S\0'),
          frame('H'),
        ]),
      );
      expect(types(await a.readUntil('Z'))).toBe('TDCZ');
      expect(types([await a.readMessage(), await a.readMessage(), await a.readMessage()])).toBe('1tT');
      // Another client wants the only server now: it must wait until a's segment is closed by a Sync.
      b.write(query('select 2'));
      await sleep(150);
      a.write(Buffer.concat([bindExecuteSync('', ['5'])]));
      const done = await a.readUntil('Z');
      expect(types(done)).toBe('2DCZ');
      expect(done.find((m) => m.type === 'D')?.body.toString('utf8', 6)).toBe('15');
      const other = await b.readUntil('Z');
      expect(types(other)).toBe('TDCZ');
    } finally {
      a.close();
      b.close();
    }
  });

  it('does not reuse a server whose client left in the middle of a failed extended request (regression)', async () => {
    // Parse error + Flush, no Sync: the server now skips everything until a Sync. Reusing it would make the next
    // client's queries vanish; the proxy must discard that connection instead.
    const proxy = await proxyWith({ userExtra: 'pool_size = 1' });
    const a = await RawClient.connect(proxy.port);
    await a.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    a.write(Buffer.concat([parseMessage('', 'selec oops', Buffer.from([0, 0])), frame('H')]));
    const m = await a.readMessage();
    expect(m.type).toBe('E');
    a.close();
    await sleep(100);
    const b = await connected(proxy.url);
    try {
      const started = Date.now();
      expect((await b.query('select 41 + 1 as n')).rows[0].n).toBe(42);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await b.end();
    }
  });

  it('opens min_pool_size connections shortly after the first login', async () => {
    const proxy = await proxyWith({
      general: 'min_pool_size = 2',
      moreUsers: `[[users]]\nname = "${MIN_USER.name}"\ndatabase = "${APP_DB}"\npassword = "${MIN_USER.password}"\n`,
    });
    expect(await serverConnections(MIN_USER.name)).toHaveLength(0);
    const c = await client(
      `postgres://${MIN_USER.name}:${MIN_USER.password}@127.0.0.1:${proxy.port}/${APP_DB}`,
    );
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    expect(await waitFor(async () => (await serverConnections(MIN_USER.name)).length === 2, 3_000)).toBe(
      true,
    );
    await sleep(1_100); // one more maintenance round must not open more
    expect(await serverConnections(MIN_USER.name)).toHaveLength(2);
  });

  for (const how of ['end', 'destroy'] as const) {
    it(`leaves no idle-in-transaction server when a client disconnects mid-transaction (${how})`, async () => {
      const proxy = await proxyWith({ general: 'checkout_timeout = 2000', userExtra: 'pool_size = 1' });
      const leaver = tracked(proxy.url);
      await leaver.client.connect();
      await leaver.client.query('begin');
      await leaver.client.query('insert into pool_marker values (1)');
      await leaver.client.query('lock table pool_marker in access exclusive mode');
      if (how === 'end') await leaver.client.end();
      else
        (
          leaver.client as unknown as { connection: { stream: { destroy(): void } } }
        ).connection.stream.destroy();

      const next = await client(proxy.url);
      const r = await elapsed(next.query<{ n: string }>('select count(*) as n from pool_marker'));
      expect(r.error).toBeNull();
      expect(r.result?.rows[0].n).toBe('0'); // rolled back: not committed, and not visible as our own
      expect(r.ms).toBeLessThan(1_000);
      expect(
        await waitFor(
          async () =>
            (await serverConnections(APP_USER)).every((s) => !s.state.startsWith('idle in transaction')),
          1_000,
        ),
      ).toBe(true);
    });
  }

  it('discards a server whose client left during a running query', async () => {
    const proxy = await proxyWith({ general: 'checkout_timeout = 2000', userExtra: 'pool_size = 1' });
    const leaver = tracked(proxy.url);
    await leaver.client.connect();
    const pid = await backendPid(leaver.client);
    void leaver.client.query('select pg_sleep(30)').catch(() => undefined);
    await waitFor(
      async () => (await serverConnections(APP_USER)).some((s) => s.pid === pid && s.state === 'active'),
      2_000,
    );
    (leaver.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const next = await client(proxy.url);
    const r = await elapsed(next.query<{ one: number }>('select 1 as one'));
    expect(r.error).toBeNull();
    expect(r.ms).toBeLessThan(1_500);
    expect(await backendPid(next)).not.toBe(pid);
  });
});

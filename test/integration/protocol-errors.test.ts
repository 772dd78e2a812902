// Bad input on the wire: unknown message types, impossible lengths, garbage startup packets, SSL/GSS requests and
// SQL errors. Each bad client gets a FATAL 08P01 and is disconnected; a concurrent client on the same proxy is unaffected.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { parseMessage, query, startupMessage } from '../../src/protocol/messages.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient, errorFields, frame } from '../helpers/raw-client.js';

const LOGIN = { user: APP_USER, database: APP_DB };

function untyped(len: number, code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(len, 0);
  out.writeInt32BE(code, 4);
  body.copy(out, 8);
  return out;
}

async function loggedIn(port: number): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  await raw.login(LOGIN, APP_PASSWORD);
  return raw;
}

/** The next message is a FATAL ErrorResponse with `code`, and then the proxy closes the connection. */
async function expectFatalAndClose(raw: RawClient, code = '08P01'): Promise<Record<string, string>> {
  try {
    const m = await raw.readMessage(2_000);
    expect(m.type).toBe('E');
    const fields = errorFields(m.body);
    expect(fields.C).toBe(code);
    expect(fields.S).toBe('FATAL');
    expect(await raw.waitClosed(2_000), 'the proxy should close the connection').toBe(true);
    return fields;
  } finally {
    raw.close();
  }
}

describe('protocol errors', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;
  /** pool_size = 1 and a small max_message_size. */
  let small: TestProxy;
  let watcher: pg.Client;

  async function watcherWorks(): Promise<void> {
    const res = await watcher.query<{ n: number }>('select $1::int as n', [7]);
    expect(res.rows[0].n).toBe(7);
  }

  /** Runs a bad-client scenario with the watcher checked before and after (and a fresh client after). */
  async function isolated(scenario: () => Promise<void>): Promise<void> {
    await watcherWorks();
    await scenario();
    await watcherWorks();
    const fresh = new pg.Client({ connectionString: proxy.url });
    await fresh.connect();
    try {
      expect((await fresh.query('select 1 as one')).rows[0].one).toBe(1);
    } finally {
      await fresh.end();
    }
  }

  beforeAll(async () => {
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    const [s] = cluster.servers;
    const direct = new pg.Client({
      host: s.host,
      port: s.port,
      user: APP_USER,
      password: APP_PASSWORD,
      database: APP_DB,
    });
    await direct.connect();
    await direct.query('create table pe_marker (id int)');
    await direct.end();
    proxy = await startTestProxy(cluster);
    small = await startTestProxy(cluster, { general: 'max_message_size = 8192', userExtra: 'pool_size = 1' });
    watcher = new pg.Client({ connectionString: proxy.url });
    watcher.on('error', () => undefined);
    await watcher.connect();
  });

  afterAll(async () => {
    await watcher?.end().catch(() => undefined);
    await proxy?.close();
    await small?.close();
    await cluster?.stop();
  });

  describe('after login', () => {
    it('answers an unknown message type with 08P01 and closes', async () => {
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(frame('y', 'whatever'));
        const f = await expectFatalAndClose(raw);
        expect(f.M).toMatch(/invalid frontend message type/);
      });
    });

    it('answers a 0x7fffffff length with 08P01 at once and closes', async () => {
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff, 0x73, 0x65]));
        const f = await expectFatalAndClose(raw);
        expect(f.M).toMatch(/bytes/);
      });
    });

    it('answers a length below 4 with 08P01 and closes', async () => {
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(Buffer.from([0x51, 0, 0, 0, 2]));
        await expectFatalAndClose(raw);
      });
    });

    it('answers a request without Sync larger than max_message_size with 08P01', async () => {
      const raw = await loggedIn(small.port);
      const text = `select '${'x'.repeat(3000)}'`;
      raw.write(Buffer.concat([0, 1, 2, 3].map((i) => parseMessage(`s${i}`, text, Buffer.from([0, 0])))));
      await expectFatalAndClose(raw);
    });

    it('rolls back a transaction the bad client left open (pool of one stays usable)', async () => {
      const raw = await loggedIn(small.port);
      const began = await raw.query('begin; insert into pe_marker values (1)');
      expect(began[began.length - 1].body.toString()).toBe('T');
      raw.write(frame('y'));
      await expectFatalAndClose(raw);
      const c = new pg.Client({ connectionString: small.url });
      await c.connect();
      try {
        // Inside the abandoned transaction the row would be visible; after ROLLBACK it is gone.
        const res = await c.query<{ n: string }>('select count(*) as n from pe_marker');
        expect(res.rows[0].n).toBe('0');
      } finally {
        await c.end();
      }
    });

    it('answers a password message after login with 08P01', async () => {
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(frame('p', 'secret\0'));
        await expectFatalAndClose(raw);
      });
    });
  });

  describe('startup', () => {
    it('closes a client that does not finish logging in within client_login_timeout (57014)', async () => {
      const slow = await startTestProxy(cluster, { general: 'client_login_timeout = 300' });
      try {
        const raw = await RawClient.connect(slow.port);
        raw.write(untyped(40, 196608).subarray(0, 6)); // half a startup packet, then nothing
        const started = Date.now();
        await expectFatalAndClose(raw, '57014');
        expect(Date.now() - started).toBeLessThan(2_000);
        // A client that logs in promptly is not affected.
        const ok = await loggedIn(slow.port);
        ok.close();
      } finally {
        await slow.close();
      }
    });

    it('rejects a startup packet of length 3 with 08P01 and closes', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(Buffer.from([0, 0, 0, 3]));
        await expectFatalAndClose(raw);
      });
    });

    it('rejects a startup packet of length 100000 with 08P01 and closes', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(untyped(100_000, 196608, Buffer.from('user\0app\0')));
        await expectFatalAndClose(raw);
      });
    });

    it('rejects garbage instead of a startup packet', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
        await expectFatalAndClose(raw);
      });
    });

    it('rejects random bytes with a plausible length', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(
          untyped(24, 0x0badf00d, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
        );
        const m = await raw.readMessage(2_000);
        expect(m.type).toBe('E');
        expect(await raw.waitClosed(2_000)).toBe(true);
      });
    });

    it('rejects protocol 2.0', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(untyped(17, 0x00020000, Buffer.from('user\0app\0\0')));
        const m = await raw.readMessage(2_000);
        expect(m.type).toBe('E');
        expect(errorFields(m.body).M).toContain('2.0');
        expect(await raw.waitClosed(2_000)).toBe(true);
      });
    });

    it('rejects startup parameters without the final terminator', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        const body = Buffer.from('user\0app\0database\0app\0');
        raw.write(untyped(8 + body.length, 196608, body));
        await expectFatalAndClose(raw);
      });
    });

    it('answers GSSENCRequest with N and then accepts a normal startup on the same connection', async () => {
      const raw = await RawClient.connect(proxy.port);
      try {
        raw.write(untyped(8, 80877104));
        expect(await raw.readByte()).toBe('N');
        await raw.login(LOGIN, APP_PASSWORD);
        const res = await raw.query('select 1');
        expect(res.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });

    it('answers SSLRequest with N when no certificate is configured, then logs in in clear', async () => {
      const raw = await RawClient.connect(proxy.port);
      try {
        raw.write(untyped(8, 80877103));
        expect(await raw.readByte()).toBe('N');
        await raw.login(LOGIN, APP_PASSWORD);
        const res = await raw.query('select 1');
        expect(res.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });

    it('closes a client that sends a startup packet in pieces and then disconnects, without harm', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        const msg = startupMessage(LOGIN);
        raw.write(msg.subarray(0, 6));
        await new Promise((r) => setTimeout(r, 50));
        raw.close();
      });
    });
  });

  describe('SQL errors', () => {
    it('returns 42601 for a syntax error and the connection stays usable (simple protocol)', async () => {
      await expect(watcher.query('selec 1')).rejects.toMatchObject({ code: '42601' });
      await watcherWorks();
    });

    it('returns 42601 for a syntax error and the connection stays usable (extended protocol)', async () => {
      await expect(watcher.query({ text: 'selec $1::int', values: [1] })).rejects.toMatchObject({
        code: '42601',
      });
      await expect(watcher.query({ name: 'bad_stmt', text: 'selec 2' })).rejects.toMatchObject({
        code: '42601',
      });
      await watcherWorks();
      await expect(watcher.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
      await watcherWorks();
    });

    it('returns the error and ReadyForQuery in order on a raw connection, and a failed transaction stays failed', async () => {
      const raw = await loggedIn(proxy.port);
      try {
        const err = await raw.query('selec 1');
        expect(err.map((m) => m.type).join('')).toBe('EZ');
        expect(errorFields(err[0].body).C).toBe('42601');
        expect(err[1].body.toString()).toBe('I');
        const tx = await raw.query('begin');
        expect(tx[tx.length - 1].body.toString()).toBe('T');
        const failed = await raw.query('selec 1');
        expect(failed[failed.length - 1].body.toString()).toBe('E');
        const aborted = await raw.query('select 1');
        expect(errorFields(aborted[0].body).C).toBe('25P02');
        const rolledBack = await raw.query('rollback');
        expect(rolledBack[rolledBack.length - 1].body.toString()).toBe('I');
        raw.write(query('select 2'));
        const ok = await raw.readUntil('Z');
        expect(ok.map((m) => m.type).join('')).toBe('TDCZ');
      } finally {
        raw.close();
      }
    });
  });
});

// Bad input on the wire: unknown message types, impossible lengths, garbage startup packets, SSL/GSS requests, oversized
// authentication messages and SQL errors. Each bad client gets what PostgreSQL gives it (a FATAL, or a silent close where
// PostgreSQL only logs) and is disconnected; a concurrent client on the same proxy is unaffected. Where it can, a test
// sends the same bytes to a PostgreSQL server directly and compares.
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

/** The connection is closed without any message (PostgreSQL's answer to an impossible startup packet). */
async function expectSilentClose(raw: RawClient): Promise<void> {
  try {
    expect(await raw.waitClosed(2_000), 'the proxy should close the connection').toBe(true);
    expect(raw.pending, 'no reply before the close').toBe(0);
  } finally {
    raw.close();
  }
}

/** What a peer answered to a scenario: each message (ErrorResponse fields S, C, M), and whether it closed. */
interface Outcome {
  replies: string[];
  isClosed: boolean;
}

async function outcomeOf(port: number, scenario: (raw: RawClient) => Promise<void>): Promise<Outcome> {
  const raw = await RawClient.connect(port);
  try {
    await scenario(raw);
    const replies: string[] = [];
    for (;;) {
      let m;
      try {
        m = await raw.readMessage(1_500);
      } catch {
        break; // closed (or nothing more)
      }
      const f = m.type === 'E' ? errorFields(m.body) : null;
      replies.push(f === null ? m.type : `E ${f.S} ${f.C} ${f.M}`);
    }
    return { replies, isClosed: await raw.waitClosed(1_000) };
  } finally {
    raw.close();
  }
}

/** A password/SASL message of `length` (its length word's value) with a body of `fill`. */
function passwordFrame(length: number): Buffer {
  const out = Buffer.alloc(1 + length, 0x61);
  out[0] = 0x70;
  out.writeInt32BE(length, 1);
  out[out.length - 1] = 0;
  return out;
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

    // PostgreSQL's pq_getmessage closes without a reply (COMMERROR: logged only) on a length below 4 or over its
    // limit for the type: 1 GiB for Query/Parse/Bind/FunctionCall/COPY messages, 10,000 bytes for the others.
    it('closes without a reply on a 0x7fffffff length, as PostgreSQL (found by the protocol fuzzer)', async () => {
      const bytes = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff, 0x73, 0x65]);
      const direct = await outcomeOf(cluster.servers[0].port, async (raw) => {
        await raw.login(LOGIN, APP_PASSWORD);
        raw.write(bytes);
      });
      expect(direct).toEqual({ replies: [], isClosed: true });
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(bytes);
        await expectSilentClose(raw);
      });
    });

    it('closes without a reply on a length below 4, as PostgreSQL (found by the protocol fuzzer)', async () => {
      const bytes = Buffer.from([0x51, 0, 0, 0, 2]);
      const direct = await outcomeOf(cluster.servers[0].port, async (raw) => {
        await raw.login(LOGIN, APP_PASSWORD);
        raw.write(bytes);
      });
      expect(direct).toEqual({ replies: [], isClosed: true });
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(bytes);
        await expectSilentClose(raw);
      });
    });

    it('closes without a reply on a Sync of 10,001 bytes (PostgreSQL: 10,000 at most) at its header', async () => {
      const header = Buffer.from([0x53, 0, 0, 0x27, 0x11]); // length word 10001
      const direct = await outcomeOf(cluster.servers[0].port, async (raw) => {
        await raw.login(LOGIN, APP_PASSWORD);
        raw.write(header);
      });
      expect(direct).toEqual({ replies: [], isClosed: true });
      await isolated(async () => {
        const raw = await loggedIn(proxy.port);
        raw.write(header);
        await expectSilentClose(raw);
      });
    });

    it("answers a frame over the proxy's max_message_size but within PostgreSQL's limit with 08P01", async () => {
      await isolated(async () => {
        const raw = await loggedIn(small.port);
        raw.write(Buffer.from([0x51, 0, 0, 0x40, 0])); // a 16 KiB Query header; max_message_size = 8192
        const f = await expectFatalAndClose(raw);
        expect(f.M).toMatch(/bytes/);
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

    it('closes without a reply on a startup packet of length 3 (as PostgreSQL)', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(Buffer.from([0, 0, 0, 3]));
        await expectSilentClose(raw);
      });
    });

    it('closes without a reply on a startup packet of length 100000', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write(untyped(100_000, 196608, Buffer.from('user\0app\0')));
        await expectSilentClose(raw);
      });
    });

    it('closes without a reply on garbage instead of a startup packet', async () => {
      await isolated(async () => {
        const raw = await RawClient.connect(proxy.port);
        raw.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
        await expectSilentClose(raw);
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

  describe('the same answer as PostgreSQL', () => {
    /** Runs `scenario` against the server directly and through the proxy; both must answer alike. */
    async function sameAsPostgres(scenario: (raw: RawClient) => Promise<void>): Promise<Outcome> {
      const direct = await outcomeOf(cluster.servers[0].port, scenario);
      let through: Outcome | undefined;
      await isolated(async () => {
        through = await outcomeOf(proxy.port, scenario);
      });
      expect(through).toEqual(direct);
      return direct;
    }
    const login = async (raw: RawClient): Promise<void> => {
      await raw.login(LOGIN, APP_PASSWORD);
    };
    /** StartupMessage, then wait for the server's authentication request. */
    const startAuth = async (raw: RawClient): Promise<void> => {
      raw.write(startupMessage(LOGIN));
      const m = await raw.readMessage();
      expect(m.type).toBe('R');
    };

    it('answers an SSLRequest after login with FATAL 08P01 at once and closes (was: hung)', async () => {
      const o = await sameAsPostgres(async (raw) => {
        await login(raw);
        raw.write(untyped(8, 80877103));
      });
      expect(o).toEqual({ replies: ['E FATAL 08P01 invalid frontend message type 0'], isClosed: true });
    });

    it('answers a StartupMessage after login the same way', async () => {
      const o = await sameAsPostgres(async (raw) => {
        await login(raw);
        raw.write(startupMessage(LOGIN));
      });
      expect(o.replies).toEqual(['E FATAL 08P01 invalid frontend message type 0']);
    });

    it('closes without a reply on impossible startup lengths and on wrong-sized CancelRequests', async () => {
      const silent: Outcome = { replies: [], isClosed: true };
      for (const bytes of [
        Buffer.from([0, 0, 0, 3]),
        Buffer.from([0, 0, 0, 7, 0, 3, 0]),
        untyped(10_005, 196608, Buffer.alloc(10_005 - 8)),
        untyped(100_000, 196608),
        untyped(12, 80877102, Buffer.alloc(4)),
        untyped(20, 80877102, Buffer.alloc(12)),
        Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      ]) {
        expect(await sameAsPostgres(async (raw) => raw.write(bytes))).toEqual(silent);
      }
    });

    it('reads a startup packet of 10004 bytes (the limit counts after the length word)', async () => {
      const body = Buffer.alloc(10_004 - 8);
      Buffer.from('user\0app\0').copy(body);
      const o = await sameAsPostgres(async (raw) => raw.write(untyped(10_004, 196608, body)));
      expect(o.replies).toEqual([
        'E FATAL 08P01 invalid startup packet layout: expected terminator as last byte',
      ]);
    });

    it('refuses an unknown protocol version, and an SSLRequest repeated after the first, with FATAL 0A000', async () => {
      const o = await sameAsPostgres(async (raw) => raw.write(untyped(24, 0x0badf00d, Buffer.alloc(16, 1))));
      expect(o.replies).toEqual([
        'E FATAL 0A000 unsupported frontend protocol 2989.61453: server supports 3.0 to 3.0',
      ]);
      const twice = await sameAsPostgres(async (raw) => {
        raw.write(untyped(8, 80877103));
        expect(await raw.readByte()).toBe('N');
        raw.write(untyped(8, 80877103));
      });
      expect(twice.replies).toEqual([
        'E FATAL 0A000 unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0',
      ]);
    });

    it('answers another message than a SASL response during authentication with FATAL 08P01', async () => {
      for (const bytes of [frame('Q', 'select 1\0'), startupMessage(LOGIN)]) {
        const o = await sameAsPostgres(async (raw) => {
          await startAuth(raw);
          raw.write(bytes);
        });
        expect(o.replies).toEqual([`E FATAL 08P01 expected SASL response, got message type ${bytes[0]}`]);
      }
    });
  });

  describe('authentication messages are capped before they are buffered', () => {
    /** Sends the header and the first 64 KiB of a `length`-byte password message; the rest is never sent. */
    async function oversizedAfterStart(port: number, length: number): Promise<Record<string, string>> {
      const raw = await RawClient.connect(port);
      raw.write(startupMessage(LOGIN));
      expect((await raw.readMessage()).type).toBe('R');
      raw.write(passwordFrame(length).subarray(0, 64 * 1024));
      return expectFatalAndClose(raw);
    }

    it('refuses a 60 MiB SASL message at its header with 08P01 (SCRAM: PostgreSQL reads at most 1024 bytes)', async () => {
      await isolated(async () => {
        const f = await oversizedAfterStart(proxy.port, 60 * 1024 * 1024);
        expect(f.M).toMatch(/over the 1025-byte limit/);
      });
    });

    it('takes a SASL message of exactly 1024 bytes as one to judge, and refuses 1025', async () => {
      await isolated(async () => {
        const exact = await RawClient.connect(proxy.port);
        exact.write(startupMessage(LOGIN));
        await exact.readMessage();
        exact.write(passwordFrame(1024));
        const judged = await expectFatalAndClose(exact); // garbage SASL: refused for its content, not its size
        expect(judged.M).not.toMatch(/limit/);
        const over = await RawClient.connect(proxy.port);
        over.write(startupMessage(LOGIN));
        await over.readMessage();
        over.write(passwordFrame(1025));
        expect((await expectFatalAndClose(over)).M).toMatch(/over the 1025-byte limit/);
      });
    });

    it('md5: a password message up to 65535 bytes is judged (28P01), a larger one refused at its header', async () => {
      const md5 = await startTestProxy(cluster, { general: 'auth_type = "md5"' });
      try {
        const ok = await RawClient.connect(md5.port);
        ok.write(startupMessage(LOGIN));
        await ok.readMessage();
        ok.write(passwordFrame(65_535));
        await expectFatalAndClose(ok, '28P01');
        const f = await oversizedAfterStart(md5.port, 60 * 1024 * 1024);
        expect(f.M).toMatch(/over the 65536-byte limit/);
      } finally {
        await md5.close();
      }
    });
  });

  describe('Terminate after a request in the same write, as PostgreSQL', () => {
    /** `INSERT … RETURNING` and Terminate in one write: the replies (types) and whether the connection closed. */
    async function insertThenTerminate(
      port: number,
      value: string,
    ): Promise<{ replies: string; isClosed: boolean }> {
      const raw = await loggedIn(port);
      try {
        raw.write(
          Buffer.concat([query(`INSERT INTO pe_terminate VALUES ('${value}') RETURNING v`), frame('X')]),
        );
        const replies: string[] = [];
        for (;;) {
          try {
            replies.push((await raw.readMessage(1_000)).type);
          } catch {
            break;
          }
        }
        return { replies: replies.join(''), isClosed: await raw.waitClosed(1_000) };
      } finally {
        raw.close();
      }
    }

    it('runs and answers the request, commits it, then closes (was: dropped it unanswered; found by the fuzzer)', async () => {
      await watcher.query('CREATE TABLE IF NOT EXISTS pe_terminate (v text)');
      const direct = await insertThenTerminate(cluster.servers[0].port, 'direct');
      expect(direct).toEqual({ replies: 'TDCZ', isClosed: true });
      await isolated(async () => {
        expect(await insertThenTerminate(proxy.port, 'proxied')).toEqual(direct);
      });
      const rows = await watcher.query<{ v: string }>('SELECT v FROM pe_terminate ORDER BY v');
      expect(rows.rows.map((r) => r.v)).toEqual(['direct', 'proxied']);
    });
  });

  describe('named statements in transaction mode, as PostgreSQL', () => {
    const P = (name: string, sql: string): Buffer => parseMessage(name, sql, Buffer.from([0, 0]));
    const bindExecuteSync = (stmt: string): Buffer =>
      Buffer.concat([
        frame('B', Buffer.concat([Buffer.from(`\0${stmt}\0`), Buffer.from([0, 0, 0, 0, 0, 0])])),
        frame('E', Buffer.from([0, 0, 0, 0, 0])),
        frame('S'),
      ]);
    /** Replies as type letters, errors as `E <SQLSTATE>` (the texts name the server's statement through the proxy). */
    async function codes(port: number, steps: Buffer[]): Promise<string[]> {
      const raw = await loggedIn(port);
      const out: string[] = [];
      try {
        for (const step of steps) {
          raw.write(step);
          for (const m of await raw.readUntil('Z'))
            out.push(m.type === 'E' ? `E ${errorFields(m.body).C}` : m.type);
        }
        return out;
      } finally {
        raw.close();
      }
    }

    it('answers a Parse of a name already prepared with 42P05 and keeps the first statement (found by the fuzzer)', async () => {
      const steps = [
        Buffer.concat([P('dup1', 'SELECT 1'), frame('S')]),
        Buffer.concat([P('dup1', 'SELECT 2'), frame('S')]),
        bindExecuteSync('dup1'),
      ];
      const direct = await codes(cluster.servers[0].port, steps);
      expect(direct).toEqual(['1', 'Z', 'E 42P05', 'Z', '2', 'D', 'C', 'Z']);
      await isolated(async () => {
        expect(await codes(proxy.port, steps)).toEqual(direct);
      });
    });

    it('lets a name whose Parse failed be prepared again', async () => {
      const steps = [
        Buffer.concat([P('dup2', 'SELEC 1'), frame('S')]),
        Buffer.concat([P('dup2', 'SELECT 2'), frame('S')]),
        bindExecuteSync('dup2'),
      ];
      const direct = await codes(cluster.servers[0].port, steps);
      expect(direct).toEqual(['E 42601', 'Z', '1', 'Z', '2', 'D', 'C', 'Z']);
      await isolated(async () => {
        expect(await codes(proxy.port, steps)).toEqual(direct);
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

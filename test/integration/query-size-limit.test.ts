// query_size_limit (PgDog): a Query or Parse over the limit, with query_size_limit_action = "block", gets ERROR 54000
// in its place among the client's requests — pipelined ones before and after it are answered in order — and the
// session goes on; inside a transaction it fails the transaction as a server error would. With "warn" it runs.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { parseMessage, query } from '../../src/protocol/messages.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient, errorFields, frame, type RawMessage } from '../helpers/raw-client.js';
import { USERS_SHARDING_TOML } from '../helpers/sharding.js';

const LIMIT = 1000;
const BLOCK = `query_size_limit = ${LIMIT}\nquery_size_limit_action = "block"`;
const BIG = `select '${'x'.repeat(5000)}' as big`;

let cluster: PgCluster;
let unsharded: TestProxy;
let sharded: TestProxy;
let warn: TestProxy;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  unsharded = await startTestProxy(cluster, { shards: 1, general: BLOCK });
  sharded = await startTestProxy(cluster, { general: BLOCK, extraPgdog: USERS_SHARDING_TOML });
  warn = await startTestProxy(cluster, { shards: 1, general: `query_size_limit = ${LIMIT}` });
});

afterAll(async () => {
  await unsharded?.close();
  await sharded?.close();
  await warn?.close();
  await cluster?.stop();
});

async function loggedIn(proxy: TestProxy): Promise<RawClient> {
  const raw = await RawClient.connect(proxy.port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  return raw;
}

/** Message types, with an ErrorResponse shown as E:<code> and ReadyForQuery as Z:<status>. */
function shape(messages: RawMessage[]): string {
  return messages
    .map((m) => {
      if (m.type === 'E') return `E:${errorFields(m.body).C}`;
      if (m.type === 'Z') return `Z:${m.body.toString()}`;
      return m.type;
    })
    .join(' ');
}

async function readReplies(raw: RawClient, readyCount: number): Promise<RawMessage[]> {
  const out: RawMessage[] = [];
  for (let i = 0; i < readyCount; i++) out.push(...(await raw.readUntil('Z')));
  return out;
}

const SYNC = frame('S');
const bind = (stmt: string): Buffer => frame('B', Buffer.from(`\0${stmt}\0\0\0\0\0\0\0`));
const EXECUTE = frame('E', Buffer.from('\0\0\0\0\0'));

describe.each([
  ['unsharded', () => unsharded],
  ['sharded', () => sharded],
])('query_size_limit = "block" (%s)', (_name, proxyOf) => {
  it('answers an oversized simple Query with ERROR 54000 and PgDog`s detail; the session goes on', async () => {
    const raw = await loggedIn(proxyOf());
    try {
      const replies = await raw.query(BIG);
      expect(shape(replies)).toBe('E:54000 Z:I');
      const f = errorFields(replies[0].body);
      expect(f.S).toBe('ERROR');
      expect(f.M).toBe('query size exceeds query_size_limit');
      expect(f.D).toBe(`message is ${query(BIG).length} bytes, query_size_limit is ${LIMIT} bytes`);
      expect(shape(await raw.query('select 1'))).toBe('T D C Z:I');
    } finally {
      raw.close();
    }
  });

  it('keeps the refusal in its place among pipelined requests', async () => {
    const raw = await loggedIn(proxyOf());
    try {
      raw.write(Buffer.concat([query('select 1'), query(BIG), query('select 2')]));
      const replies = await readReplies(raw, 3);
      expect(shape(replies)).toBe('T D C Z:I E:54000 Z:I T D C Z:I');
      const values = replies.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6));
      expect(values).toEqual(['1', '2']);
    } finally {
      raw.close();
    }
  });

  it('refuses an oversized Parse: error for its segment, skipped to Sync, the statement never exists', async () => {
    const raw = await loggedIn(proxyOf());
    try {
      raw.write(Buffer.concat([parseMessage('big', BIG, new Uint8Array(2)), bind('big'), EXECUTE, SYNC]));
      expect(shape(await raw.readUntil('Z'))).toBe('E:54000 Z:I');
      raw.write(Buffer.concat([bind('big'), EXECUTE, SYNC]));
      expect(shape(await raw.readUntil('Z'))).toBe('E:26000 Z:I'); // as PostgreSQL: no such statement
      expect(shape(await raw.query('select 1'))).toBe('T D C Z:I');
    } finally {
      raw.close();
    }
  });
});

describe('query_size_limit inside a transaction', () => {
  it('unsharded: the refusal fails the transaction, as the server`s own error would', async () => {
    const raw = await loggedIn(unsharded);
    try {
      expect(shape(await raw.query('begin'))).toBe('C Z:T');
      expect(shape(await raw.query(BIG))).toBe('E:54000 Z:E');
      expect(shape(await raw.query('select 1'))).toBe('E:25P02 Z:E');
      expect(shape(await raw.query('rollback'))).toBe('C Z:I');
    } finally {
      raw.close();
    }
  });
});

describe('query_size_limit_action = "warn" (PgDog`s default action)', () => {
  it('runs the oversized query', async () => {
    const client = new pg.Client({ connectionString: warn.url });
    await client.connect();
    try {
      const r = await client.query<{ big: string }>(BIG);
      expect(r.rows[0].big).toHaveLength(5000);
    } finally {
      await client.end();
    }
  });
});

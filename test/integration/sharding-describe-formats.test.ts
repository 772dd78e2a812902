// Result formats of a fan-out that sorts or aggregates when the client describes the statement ('S'), as postgres.js
// and pgx do: that RowDescription reports format 0 (text) for every column whatever Bind asked for, so the merge must
// take the formats from a Describe of the portal (the proxy adds one). The client gets exactly the replies it asked
// for — its statement's description, not the portal's — and binary result columns merged as binary (ORDER BY, min,
// max, count), in every order of Describe and Bind, with a named statement prepared earlier, and when Bind or Execute
// fails. Also node-postgres with `binary: true` (Describe of the portal by the client), and count(DISTINCT …),
// array_agg and string_agg (… ORDER BY …) with a different format per column.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { firstError, frame, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';
import { readBinaryArray } from '../../src/execute/pg-array.js';

const SHARDS = 2;
/** Ids on both shards, negatives too (a text sort of binary int8 bytes would misplace them). */
const IDS = Array.from({ length: 40 }, (_, i) => (i - 15) * 37);
const DESC = [...IDS].sort((a, b) => b - a);
const nameOf = (id: number): string => `user ${id}`;

let cluster: PgCluster;
let proxy: TestProxy;
let raw: RawClient;
let client: pg.Client;

const kinds = (messages: RawMessage[]): string => messages.map((m) => m.type).join('');
const rowsOf = (messages: RawMessage[]): RawMessage[] => messages.filter((m) => m.type === 'D');

/** The format code of each column of a RowDescription body. */
function formatsOf(body: Buffer): number[] {
  const count = body.readInt16BE(0);
  const formats: number[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    pos = body.indexOf(0, pos) + 1 + 4 + 2 + 4 + 2 + 4; // name, table OID, column, type OID, size, modifier
    formats.push(body.readInt16BE(pos));
    pos += 2;
  }
  return formats;
}

/** The values of a DataRow body (null for SQL NULL). */
function valuesOf(body: Buffer): (Buffer | null)[] {
  const count = body.readInt16BE(0);
  const values: (Buffer | null)[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    values.push(length < 0 ? null : body.subarray(pos, pos + length));
    if (length > 0) pos += length;
  }
  return values;
}

/** An int8 column value in `format` (1: 8 bytes big-endian, 0: text). */
function int8(value: Buffer | null, format: number): number {
  if (value === null) throw new Error('unexpected NULL');
  if (format === 1) {
    expect(value.length).toBe(8);
    return Number(value.readBigInt64BE(0));
  }
  return Number(value.toString());
}

const parse = (sql: string, name = '', paramTypes: number[] = []): Buffer => {
  const types = Buffer.alloc(2 + 4 * paramTypes.length);
  types.writeInt16BE(paramTypes.length, 0);
  paramTypes.forEach((t, i) => types.writeUInt32BE(t, 2 + 4 * i));
  return frame('P', Buffer.concat([Buffer.from(`${name}\0${sql}\0`), types]));
};
const describeStatement = (name = ''): Buffer => frame('D', `S${name}\0`);
const describePortal = (name = ''): Buffer => frame('D', `P${name}\0`);
/** Bind of `statement` to the unnamed portal: text parameters, one result format code for every column. */
const bind = (format: number, statement = '', params: string[] = []): Buffer => {
  const parts = [Buffer.from(`\0${statement}\0`), Buffer.from([0, 0])];
  const count = Buffer.alloc(2);
  count.writeInt16BE(params.length, 0);
  parts.push(count);
  for (const p of params) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(Buffer.byteLength(p), 0);
    parts.push(len, Buffer.from(p));
  }
  const formats = Buffer.alloc(4);
  formats.writeInt16BE(1, 0);
  formats.writeInt16BE(format, 2);
  parts.push(formats);
  return frame('B', Buffer.concat(parts));
};
const execute = frame('E', Buffer.from('\0\0\0\0\0'));
const sync = frame('S');

async function request(...frames: Buffer[]): Promise<RawMessage[]> {
  raw.write(Buffer.concat([...frames, sync]));
  return raw.readUntil('Z');
}

beforeAll(async () => {
  cluster = await testServers(SHARDS, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
  client = new pg.Client({ connectionString: proxy.url, query_timeout: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
  for (const id of IDS) await client.query('insert into users values ($1, $2)', [id, nameOf(id)]);
  raw = await RawClient.connect(proxy.port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
});

afterAll(async () => {
  raw?.close();
  await client?.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('ORDER BY across shards, statement described by the client', () => {
  it('the ids are on both shards', () => {
    expect(new Set(IDS.map((id) => userShard(id, SHARDS))).size).toBe(SHARDS);
  });

  for (const format of [1, 0]) {
    const kind = format === 1 ? 'binary' : 'text';

    it(`Parse, Describe S, Bind (${kind} results), Execute: the statement's description, rows in order`, async () => {
      const replies = await request(
        parse('select id, name from users order by id desc'),
        describeStatement(),
        bind(format),
        execute,
      );
      expect(kinds(replies)).toBe(`1tT2${'D'.repeat(IDS.length)}CZ`);
      expect(formatsOf(replies[2].body)).toEqual([0, 0]); // the statement's: formats are only known at Bind
      const rows = rowsOf(replies).map((m) => valuesOf(m.body));
      expect(rows.map((r) => int8(r[0], format))).toEqual(DESC);
      expect(rows.map((r) => r[1]?.toString())).toEqual(DESC.map(nameOf));
      expect(
        replies[replies.length - 2].body.toString('utf8', 0, replies[replies.length - 2].body.length - 1),
      ).toBe(`SELECT ${IDS.length}`);
    });

    it(`Parse, Bind (${kind}), Describe S, Execute: the same, the description after BindComplete`, async () => {
      const replies = await request(
        parse('select id, name from users order by id desc limit 5'),
        bind(format),
        describeStatement(),
        execute,
      );
      expect(kinds(replies)).toBe(`12tT${'D'.repeat(5)}CZ`);
      expect(formatsOf(replies[3].body)).toEqual([0, 0]);
      expect(rowsOf(replies).map((m) => int8(valuesOf(m.body)[0], format))).toEqual(DESC.slice(0, 5));
    });

    it(`Describe S and Describe P (${kind}) by the client: both descriptions, rows in order`, async () => {
      const replies = await request(
        parse('select id, name from users order by id desc'),
        describeStatement(),
        bind(format),
        describePortal(),
        execute,
      );
      expect(kinds(replies)).toBe(`1tT2T${'D'.repeat(IDS.length)}CZ`);
      expect(formatsOf(replies[2].body)).toEqual([0, 0]);
      expect(formatsOf(replies[4].body)).toEqual([format, format]);
      expect(rowsOf(replies).map((m) => int8(valuesOf(m.body)[0], format))).toEqual(DESC);
    });

    it(`a named statement prepared earlier, then Describe S, Bind (${kind}), Execute`, async () => {
      const name = `by_id_desc_${kind}`;
      expect(kinds(await request(parse('select id, name from users order by id desc', name)))).toBe('1Z');
      const replies = await request(describeStatement(name), bind(format, name), execute);
      expect(kinds(replies)).toBe(`tT2${'D'.repeat(IDS.length)}CZ`);
      expect(formatsOf(replies[1].body)).toEqual([0, 0]);
      expect(rowsOf(replies).map((m) => int8(valuesOf(m.body)[0], format))).toEqual(DESC);
    });
  }
});

describe('aggregates across shards, statement described by the client', () => {
  for (const format of [1, 0]) {
    const kind = format === 1 ? 'binary' : 'text';

    it(`max, min and count with ${kind} results`, async () => {
      const replies = await request(
        parse('select max(id), min(id), count(*) from users'),
        describeStatement(),
        bind(format),
        execute,
      );
      expect(kinds(replies)).toBe('1tT2DCZ');
      expect(formatsOf(replies[2].body)).toEqual([0, 0, 0]);
      const row = valuesOf(rowsOf(replies)[0].body);
      expect(row.map((v) => int8(v, format))).toEqual([Math.max(...IDS), Math.min(...IDS), IDS.length]);
    });
  }

  it('a Bind that fails on the shards: the client still gets its statement description, then the error', async () => {
    const replies = await request(
      parse('select max(id), count(*) from users where id > $1', '', [20 /* int8 */]),
      describeStatement(),
      bind(1, '', ['not a number']),
      execute,
    );
    expect(kinds(replies)).toBe('1tTEZ');
    expect(firstError(replies).C).toBe('22P02');
    expect(formatsOf(replies[2].body)).toEqual([0, 0]);
  });

  it('an Execute that fails on the shards: no description the client did not ask for', async () => {
    const replies = await request(
      parse('select max(id), count(*) from users where 1 / (id - id) > 0'),
      describeStatement(),
      bind(1),
      execute,
    );
    expect(kinds(replies)).toBe('1tT2EZ');
    expect(firstError(replies).C).toBe('22012');
    // The connection goes on: the next request is answered in full.
    const next = await request(
      parse('select max(id), count(*) from users'),
      describeStatement(),
      bind(1),
      execute,
    );
    expect(kinds(next)).toBe('1tT2DCZ');
    expect(valuesOf(rowsOf(next)[0].body).map((v) => int8(v, 1))).toEqual([Math.max(...IDS), IDS.length]);
  });
});

/** Bind of the unnamed statement with one result format code per column. */
const bindPerColumn = (formats: number[]): Buffer => {
  const codes = Buffer.alloc(2 + 2 * formats.length);
  codes.writeInt16BE(formats.length, 0);
  formats.forEach((f, i) => codes.writeInt16BE(f, 2 + 2 * i));
  return frame('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 0]), codes]));
};

describe('DISTINCT and ordered aggregates, statement described by the client, formats per column', () => {
  const sql =
    "select count(distinct length(name)), array_agg(id order by id desc), string_agg(name, ',' order by id) from users";
  for (const formats of [
    [0, 1, 0],
    [1, 0, 1],
    [1, 1, 1],
  ]) {
    it(`count(DISTINCT …), array_agg and string_agg with result formats ${formats.join(', ')}`, async () => {
      const replies = await request(parse(sql), describeStatement(), bindPerColumn(formats), execute);
      expect(kinds(replies)).toBe('1tT2DCZ');
      // The client's statement description: three columns (no hidden ones), count's type int8, then int8[], text.
      expect(formatsOf(replies[2].body)).toEqual([0, 0, 0]);
      const [count, ids, names] = valuesOf(rowsOf(replies)[0].body);
      const lengths = new Set(IDS.map((id) => nameOf(id).length));
      expect(int8(count, formats[0])).toBe(lengths.size);
      const expectedIds = DESC;
      if (formats[1] === 1) {
        const array = readBinaryArray(ids as Buffer);
        expect(array.elementOid).toBe(20);
        expect(array.elements.map((e) => Number((e as Buffer).readBigInt64BE(0)))).toEqual(expectedIds);
      } else {
        expect(ids?.toString()).toBe(`{${expectedIds.join(',')}}`);
      }
      const ascending = [...IDS].sort((a, b) => a - b);
      expect(names?.toString()).toBe(ascending.map(nameOf).join(','));
    });
  }
});

/** A node-postgres query asking for binary results (`binary` is missing from @types/pg's QueryConfig). */
const binary = (config: pg.QueryConfig): pg.QueryConfig => ({ ...config, binary: true }) as pg.QueryConfig;

describe('node-postgres with binary results (it describes the portal itself)', () => {
  // node-postgres reads every value as UTF-8 text, even binary ones: only values whose bytes survive that are checked
  // (text columns, small counts), the sort and the sum of counts being done on the binary int8 values by the merge.
  it('ORDER BY and count come back right', async () => {
    const sorted = await client.query<{ name: string }>(
      binary({ text: 'select name, id from users where id > $1 order by id desc', values: [-1000] }),
    );
    expect(sorted.rows.map((r) => r.name)).toEqual(DESC.map(nameOf));
    const counted = await client.query<{ count: string }>(
      binary({ text: 'select count(*) from users where id > $1', values: [0] }),
    );
    expect(counted.rows.map((r) => Number(r.count))).toEqual([IDS.filter((id) => id > 0).length]);
  });
});

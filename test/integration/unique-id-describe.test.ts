// pgdog.unique_id() through the extended protocol on 2 real shards (issue 12): the proxy turns each call of a Parse
// into an int8 parameter of its own, yet a Describe of the statement lists the client's parameters only — exactly what
// PostgreSQL reports for the same statement with a constant in place of the call (read on a shard directly) — for a
// Describe alone, Parse + Describe + Sync, and Parse + Describe + Bind + Execute + Sync; through raw frames,
// node-postgres's Connection and postgres.js (which describes every statement before binding). SQL-level PREPARE sent
// in a Parse works as in a simple Query: each EXECUTE (also sent in a Parse) gets new ids, DEALLOCATE / DISCARD ALL
// forget the statement.
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
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
import { errorFields, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { directShardClients, USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
const raws: RawClient[] = [];

const CALL = 'pgdog.unique_id()';

/** The same statement as PostgreSQL sees it without the call: a bigint constant in its place. */
function withoutCall(text: string): string {
  return text.split(CALL).join('1::bigint');
}

async function rawTo(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  raws.push(c);
  await c.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  return c;
}

/** A raw client on shard 0 directly (as the proxy's servers see it). */
function rawDirect(): Promise<RawClient> {
  return rawTo(cluster.servers[0].port);
}

function kinds(messages: RawMessage[]): string {
  return messages.map((m) => m.type).join('');
}

/** The ParameterDescription bodies among `messages`, as hex (count, then one OID per parameter). */
function parameterDescriptions(messages: RawMessage[]): string[] {
  return messages.filter((m) => m.type === 't').map((m) => m.body.toString('hex'));
}

/** The OIDs a ParameterDescription body lists. */
function oids(hex: string): number[] {
  const body = Buffer.from(hex, 'hex');
  return Array.from({ length: body.readInt16BE(0) }, (_, k) => body.readInt32BE(2 + 4 * k));
}

async function send(c: RawClient, frames: Buffer[]): Promise<RawMessage[]> {
  c.write(Buffer.concat(frames));
  const replies = await c.readUntil('Z');
  const error = replies.find((m) => m.type === 'E');
  if (error !== undefined) throw new Error(`server error: ${JSON.stringify(errorFields(error.body))}`);
  return replies;
}

/** Parse (unnamed) + Describe (statement) + Sync: the ParameterDescription body. */
async function describeText(c: RawClient, text: string, types: number[] = []): Promise<string> {
  const replies = await send(c, [
    serialize.parse({ text, types }),
    serialize.describe({ type: 'S', name: '' }),
    serialize.sync(),
  ]);
  expect(kinds(replies)).toMatch(/^1t[Tn]Z$/);
  return parameterDescriptions(replies)[0];
}

/** The shards holding users row `id`, read on each shard directly. */
async function shardsHolding(id: string): Promise<number[]> {
  const out: number[] = [];
  for (const [shard, d] of direct.entries()) {
    if ((await d.query('select 1 from users where id = $1', [id])).rowCount === 1) out.push(shard);
  }
  return out;
}

/**
 * node-postgres's way to send messages of one's own (pg.Submittable, as pg-cursor does): Parse, Describe (statement),
 * Sync; resolves with the parameter types of the ParameterDescription.
 */
class DescribeStatement implements pg.Submittable {
  private types: number[] | null = null;
  private error: Error | null = null;

  constructor(
    private readonly text: string,
    private readonly resolve: (types: number[]) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  submit(connection: pg.Connection): void {
    connection.once('parameterDescription', (m: { dataTypeIDs: number[] }) => (this.types = m.dataTypeIDs));
    connection.parse({ name: '', text: this.text, types: [] }, true);
    connection.describe({ type: 'S', name: '' }, true);
    connection.sync();
  }

  handleRowDescription(): void {}

  handleError(err: Error): void {
    this.error = err;
  }

  handleReadyForQuery(): void {
    if (this.error !== null) this.reject(this.error);
    else if (this.types === null) this.reject(new Error('no ParameterDescription'));
    else this.resolve(this.types);
  }
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, env: { NODE_ID: 'shardgate-4' } });
  direct = await directShardClients(cluster);
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  await c.query('create table users (id bigint primary key, name text not null)');
  await c.end();
});

afterAll(async () => {
  for (const c of raws) c.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('Describe of a statement calling pgdog.unique_id() (2 shards)', () => {
  const statements: { text: string; types: number[]; want: number[] }[] = [
    { text: `insert into users (id, name) values (${CALL}, $1) returning id`, types: [], want: [25] },
    { text: `insert into users (id, name) values (${CALL}, $1 || $2::int)`, types: [], want: [25, 23] },
    { text: `insert into users (id, name) values (${CALL}, 'x') returning id`, types: [], want: [] },
    { text: `select ${CALL} as a, $1::int as b, ${CALL} as c`, types: [], want: [23] },
    // Declared types beyond those the text uses: PostgreSQL lists them all, so does the proxy.
    { text: `select ${CALL} as a, $1 as b`, types: [25, 16], want: [25, 16] },
  ];

  it('Parse + Describe + Sync lists what PostgreSQL lists for the statement without the call', async () => {
    const [viaProxy, onShard] = await Promise.all([rawTo(proxy.port), rawDirect()]);
    for (const { text, types, want } of statements) {
      const expected = await describeText(onShard, withoutCall(text), types);
      expect(oids(expected), text).toEqual(want);
      expect(await describeText(viaProxy, text, types), text).toBe(expected);
    }
  });

  it('a named statement described in a later request, then in one request with Bind and Execute', async () => {
    const [c, onShard] = await Promise.all([rawTo(proxy.port), rawDirect()]);
    const text = `insert into users (id, name) values (${CALL}, $1) returning id, name`;
    const expected = await describeText(onShard, withoutCall(text), []);
    await send(c, [serialize.parse({ name: 'add_user', text, types: [] }), serialize.sync()]);
    // A Describe alone, and two in one request: a statement without ids first (its reply untouched), then ours.
    const alone = await send(c, [serialize.describe({ type: 'S', name: 'add_user' }), serialize.sync()]);
    expect(parameterDescriptions(alone)).toEqual([expected]);
    const two = await send(c, [
      serialize.parse({ name: 'plain', text: 'select $1::int + $2::int as sum', types: [] }),
      serialize.describe({ type: 'S', name: 'plain' }),
      serialize.describe({ type: 'S', name: 'add_user' }),
      serialize.sync(),
    ]);
    expect(parameterDescriptions(two).map(oids)).toEqual([[23, 23], [25]]);
    // Describe, Bind, Execute in one pipeline (postgres.js and Prisma's shape): the row lands by its new id.
    const ran = await send(c, [
      serialize.describe({ type: 'S', name: 'add_user' }),
      serialize.bind({ statement: 'add_user', values: ['ada'] }),
      serialize.execute({}),
      serialize.sync(),
    ]);
    expect(kinds(ran)).toBe('tT2DCZ');
    expect(parameterDescriptions(ran)).toEqual([expected]);
    const id = ran.find((m) => m.type === 'D')?.body.toString('utf8', 6, 6 + ran[3].body.readInt32BE(2));
    expect(id).toMatch(/^\d+$/);
    expect(await shardsHolding(id as string)).toEqual([userShard(BigInt(id as string))]);
  });

  it('an error before the Describe: the next request’s Describe is still trimmed, its own only', async () => {
    const c = await rawTo(proxy.port);
    const text = `insert into users (id, name) values (${CALL}, $1)`;
    c.write(
      Buffer.concat([
        serialize.parse({ name: 'bad', text: 'select * from no_such_table', types: [] }),
        serialize.parse({ name: 'ins', text, types: [] }),
        serialize.describe({ type: 'S', name: 'ins' }),
        serialize.sync(),
      ]),
    );
    const failed = await c.readUntil('Z');
    expect(kinds(failed)).toBe('EZ');
    const replies = await send(c, [
      serialize.parse({ name: 'ins', text, types: [] }),
      serialize.describe({ type: 'S', name: 'ins' }),
      serialize.sync(),
    ]);
    expect(parameterDescriptions(replies).map(oids)).toEqual([[25]]);
  });

  it('node-postgres: a Submittable describing a statement with the call gets the client’s parameter types', async () => {
    const describeWith = async (config: pg.ClientConfig, text: string): Promise<number[]> => {
      const c = new pg.Client(config);
      await c.connect();
      try {
        const types = await new Promise<number[]>((resolve, reject) => {
          void c.query(new DescribeStatement(text, resolve, reject));
        });
        await c.query('select 1'); // the connection goes on
        return types;
      } finally {
        await c.end();
      }
    };
    const text = `insert into users (id, name) values (${CALL}, $1) returning id`;
    const [host] = cluster.servers;
    const expected = await describeWith(
      { host: host.host, port: host.port, user: APP_USER, password: APP_PASSWORD, database: APP_DB },
      withoutCall(text),
    );
    expect(expected).toEqual([25]);
    expect(await describeWith({ connectionString: proxy.url }, text)).toEqual(expected);
  });

  it('postgres.js: describe() reports the client’s parameters, and the INSERT runs with new ids', async () => {
    const viaProxy = postgres(proxy.url, { max: 1, onnotice: () => undefined });
    const [host] = cluster.servers;
    const onShard = postgres({
      host: host.host,
      port: host.port,
      user: APP_USER,
      pass: APP_PASSWORD,
      database: APP_DB,
      max: 1,
      onnotice: () => undefined,
    });
    try {
      const name = 'eve';
      const described = await viaProxy`
        insert into users (id, name) values (pgdog.unique_id(), ${name}) returning id, name`.describe();
      const plain = await onShard`
        insert into users (id, name) values (1::bigint, ${name}) returning id, name`.describe();
      expect(plain.types).toEqual([25]);
      expect(described.types).toEqual(plain.types);
      expect(described.columns.map((col) => [col.name, col.type])).toEqual(
        plain.columns.map((col) => [col.name, col.type]),
      );
      const ids: string[] = [];
      for (const n of ['pj-1', 'pj-2', 'pj-3']) {
        const rows = await viaProxy<{ id: string; name: string }[]>`
          insert into users (id, name) values (pgdog.unique_id(), ${n}) returning id, name`;
        expect(rows[0].name).toBe(n);
        ids.push(rows[0].id);
      }
      expect(new Set(ids).size).toBe(3);
      for (const id of ids) expect(await shardsHolding(id)).toEqual([userShard(BigInt(id))]);
    } finally {
      await viaProxy.end();
      await onShard.end();
    }
  });
});

describe('SQL PREPARE with pgdog.unique_id() sent in a Parse (2 shards)', () => {
  /**
   * A statement of its own sent in a Parse (unnamed), not as a simple Query: postgres.js reads `simple` at run time;
   * its typings leave it out.
   */
  const extended = { prepare: false, simple: false } as postgres.UnsafeQueryOptions;

  it('each EXECUTE gets new ids (sent in a Parse too: literals, PostgreSQL takes no parameters there)', async () => {
    const sql = postgres(proxy.url, { max: 1, onnotice: () => undefined });
    try {
      await sql.unsafe(
        `prepare add_named (text) as insert into users (id, name) values (${CALL}, $1) returning id, name`,
        [],
        extended,
      );
      const ids: string[] = [];
      for (const name of ['ext-1', 'ext-2', 'ext-3', 'ext-4']) {
        // The last as a simple Query: a PREPARE parsed is EXECUTEd there too.
        const options = name === 'ext-4' ? { ...extended, simple: true } : extended;
        const r = await sql.unsafe<{ id: string; name: string }[]>(
          `execute add_named('${name}')`,
          [],
          options,
        );
        expect(r[0].name).toBe(name);
        ids.push(r[0].id);
      }
      expect(new Set(ids).size).toBe(4);
      for (const id of ids) expect(await shardsHolding(id)).toEqual([userShard(BigInt(id))]);
      // Described as PostgreSQL describes an EXECUTE: no parameters (ids in the text are not the client's).
      const described = await sql.unsafe(`execute add_named('ext-5')`, [], extended).describe();
      expect(described.types).toEqual([]);
      // Without arguments.
      await sql.unsafe(`prepare next_id as select ${CALL} as id`, [], extended);
      const a = (await sql.unsafe<{ id: string }[]>('execute next_id', [], extended))[0].id;
      const b = (await sql.unsafe<{ id: string }[]>('execute next_id', [], extended))[0].id;
      expect(BigInt(b)).toBeGreaterThan(BigInt(a));
    } finally {
      await sql.end();
    }
  });

  it('a named EXECUTE statement bound a second time is refused (0A000): its ids would repeat', async () => {
    const c = await rawTo(proxy.port);
    await send(c, [
      serialize.parse({ text: `prepare twice as select ${CALL} as id`, types: [] }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    ]);
    await send(c, [
      serialize.parse({ name: 'run_twice', text: 'execute twice', types: [] }),
      serialize.sync(),
    ]);
    const first = await send(c, [
      serialize.bind({ statement: 'run_twice' }),
      serialize.execute({}),
      serialize.sync(),
    ]);
    expect(kinds(first)).toBe('2DCZ');
    c.write(
      Buffer.concat([serialize.bind({ statement: 'run_twice' }), serialize.execute({}), serialize.sync()]),
    );
    const second = await c.readUntil('Z');
    expect(kinds(second)).toBe('EZ');
    expect(errorFields(second[0].body).C).toBe('0A000');
    expect(kinds(await c.query('select 1'))).toBe('TDCZ'); // the session goes on
  });

  it('DEALLOCATE and DISCARD ALL in a Parse forget it: the name is free for a statement without calls', async () => {
    const sql = postgres(proxy.url, { max: 1, onnotice: () => undefined });
    try {
      const run = (text: string): Promise<unknown[]> => sql.unsafe(text, [], extended);
      await run(`prepare again as select ${CALL} as id`);
      await run('deallocate again');
      await run('prepare again as select 7 as id');
      expect(await run('execute again')).toEqual([{ id: 7 }]);
      await run('deallocate again');
      await run(`prepare again as select ${CALL} as id`);
      await run('discard all');
      await run('prepare again as select 8 as id');
      expect(await run('execute again')).toEqual([{ id: 8 }]);
      await run('deallocate again');
    } finally {
      await sql.end();
    }
  });
});

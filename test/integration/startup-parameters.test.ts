// Startup parameters through the proxy as PostgreSQL takes them (issues 11 and 12): node-postgres `options`
// (`-c name=value`), statement_timeout and idle_in_transaction_session_timeout, postgres.js `connection` settings with
// a dot, and application_name reach every server connection the client uses — in session mode, in transaction mode
// (a pooled connection is brought in step, and reset for the next client), and on a sharded database, where a RESET
// returns to the startup value as in PostgreSQL. Invalid ones fail the login as PostgreSQL fails it, and what a
// client is told at login (ParameterStatus, NOTICEs) is what PostgreSQL tells it. The reference is always the same
// server reached directly with the same startup packet.
import pg from 'pg';
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
import { errorFields, parameterStatuses, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let sessionMode: TestProxy;
/** One server connection for every client: each client's settings must be brought in and taken out again. */
let transactionMode: TestProxy;
let sharded: TestProxy;
const clients: pg.Client[] = [];

const SETTINGS_SQL = `select current_setting('search_path') as search_path, current_setting('work_mem') as work_mem,
  current_setting('statement_timeout') as statement_timeout,
  current_setting('idle_in_transaction_session_timeout') as idle_timeout,
  current_setting('application_name') as application_name, current_setting('DateStyle') as datestyle`;

/** node-postgres connection options that become startup parameters. */
const PG_OPTIONS = {
  options: '-c search_path=app_schema,public --work-mem=7MB -c DateStyle=german',
  statement_timeout: 4321,
  idle_in_transaction_session_timeout: 8765,
  application_name: 'orm-app',
};

function directConfig(): pg.ClientConfig {
  const s = cluster.servers[0];
  return { host: s.host, port: s.port, user: APP_USER, password: APP_PASSWORD, database: APP_DB };
}

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(config);
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

async function settingsOf(c: pg.Client, sql = SETTINGS_SQL): Promise<Record<string, string>> {
  return (await c.query<Record<string, string>>(sql)).rows[0];
}

/** Everything a raw client receives logging in with `params` (up to ReadyForQuery, or the error that ends it). */
async function login(port: number, params: Record<string, string>): Promise<RawMessage[]> {
  const raw = await RawClient.connect(port);
  try {
    return await raw.loginMessages({ user: APP_USER, database: APP_DB, ...params }, APP_PASSWORD);
  } finally {
    raw.close();
  }
}

/** What a login tells the client, comparable between the proxy and PostgreSQL (no cancel key, no file/line). */
function loginView(messages: RawMessage[]): {
  types: string;
  status: Record<string, string>;
  errors: Record<string, string>[];
} {
  const errors: Record<string, string>[] = [];
  for (const m of messages) {
    if (m.type === 'E' || m.type === 'N') {
      const { S, V, C, M, D, H } = errorFields(m.body);
      errors.push(
        Object.fromEntries(Object.entries({ S, V, C, M, D, H }).filter(([, v]) => v !== undefined)),
      );
    }
  }
  // The authentication exchange differs (SCRAM steps), and ParameterStatus order is the server's business.
  const types = messages
    .filter((m) => m.type !== 'S')
    .map((m) => (m.type === 'R' ? `R${m.body.readInt32BE(0) === 0 ? 'ok' : ''}` : m.type))
    .filter((t) => t !== 'R')
    .join(' ');
  return { types, status: parameterStatuses(messages), errors };
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  const direct = await connect(directConfig());
  await direct.query('create schema app_schema');
  sessionMode = await startTestProxy(cluster, { shards: 1, general: 'pooler_mode = "session"' });
  transactionMode = await startTestProxy(cluster, { shards: 1, userExtra: 'pool_size = 1' });
  sharded = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, userExtra: 'pool_size = 1' });
  const s = await connect({ connectionString: sharded.url });
  await s.query('create schema if not exists app_schema');
  await s.query('create table users (id bigint primary key, name text)');
  await s.query(`insert into users values (${idOn(0, 1)}, 'a'), (${idOn(1, 1)}, 'b')`);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await sessionMode?.close();
  await transactionMode?.close();
  await sharded?.close();
  await cluster?.stop();
});

describe('startup settings reach the server (node-postgres, postgres.js)', () => {
  it('applies node-postgres options, timeouts and application_name as PostgreSQL does, in session mode', async () => {
    const expected = await settingsOf(await connect({ ...directConfig(), ...PG_OPTIONS }));
    expect(expected.search_path).toBe('app_schema,public'); // the reference really took them
    expect(expected.statement_timeout).toBe('4321ms');
    const c = await connect({ connectionString: sessionMode.url, ...PG_OPTIONS });
    expect(await settingsOf(c)).toEqual(expected);
    await c.query('select 1'); // and still after a query, on the connection the session keeps
    expect(await settingsOf(c)).toEqual(expected);
  });

  it('brings the one pooled connection in step for each client in transaction mode, and resets it for the next', async () => {
    const expected = await settingsOf(await connect({ ...directConfig(), ...PG_OPTIONS }));
    const defaults = await settingsOf(await connect(directConfig()));
    const a = await connect({ connectionString: transactionMode.url, ...PG_OPTIONS });
    const b = await connect({ connectionString: transactionMode.url });
    for (let i = 0; i < 3; i++) {
      expect(await settingsOf(a)).toEqual(expected);
      expect(await settingsOf(b)).toEqual(defaults);
    }
    // Inside a transaction too: the settings are in place before its first statement.
    await a.query('begin');
    expect(await settingsOf(a)).toEqual(expected);
    await a.query('commit');
    expect(await settingsOf(b)).toEqual(defaults);
  });

  it('applies postgres.js connection settings (custom names with a dot, search_path lists) in both modes', async () => {
    const connection = {
      'shardgate_test.tenant': 'acme',
      search_path: 'app_schema, "Other"',
      application_name: 'pgjs',
    };
    // Literal names: a parameter of current_setting() on a sharded database fails before any of this (own issue).
    const sql = `select current_setting('shardgate_test.tenant') as tenant, current_setting('search_path') as path,
      current_setting('application_name') as app`;
    const s = cluster.servers[0];
    const directUrl = `postgres://${APP_USER}:${APP_PASSWORD}@${s.host}:${s.port}/${APP_DB}`;
    const direct = postgres(directUrl, { max: 1, connection });
    const expected = (await direct.unsafe(sql))[0];
    await direct.end();
    expect(expected).toEqual({ tenant: 'acme', path: 'app_schema, "Other"', app: 'pgjs' });
    for (const proxy of [sessionMode, transactionMode, sharded]) {
      const client = postgres(proxy.url, { max: 1, connection });
      try {
        expect((await client.unsafe(sql))[0]).toEqual(expected);
        expect((await client.unsafe(sql, [], { prepare: true }))[0]).toEqual(expected);
      } finally {
        await client.end();
      }
    }
  });

  it('replays startup settings on every shard, and RESET returns to the startup value as in PostgreSQL', async () => {
    const timeoutOn = async (c: pg.Client, shard: number): Promise<string> =>
      (
        await c.query<{ t: string }>(
          `select current_setting('statement_timeout') as t from users where id = ${idOn(shard, 1)}`,
        )
      ).rows[0].t;
    const direct = await connect({ ...directConfig(), options: '-c statement_timeout=4321' });
    await direct.query('set statement_timeout = 99');
    await direct.query('reset statement_timeout');
    expect((await settingsOf(direct)).statement_timeout).toBe('4321ms'); // PostgreSQL's RESET: the startup value

    const a = await connect({ connectionString: sharded.url, options: '-c statement_timeout=4321' });
    const b = await connect({ connectionString: sharded.url });
    for (const shard of [0, 1]) {
      expect(await timeoutOn(a, shard)).toBe('4321ms');
      expect(await timeoutOn(b, shard)).toBe('0'); // the same pooled connections, in step with b
    }
    await a.query('set statement_timeout = 99');
    expect(await timeoutOn(a, 0)).toBe('99ms');
    expect(await timeoutOn(b, 0)).toBe('0');
    await a.query('reset statement_timeout');
    expect(await timeoutOn(a, 0)).toBe('4321ms');
    expect(await timeoutOn(a, 1)).toBe('4321ms');
    await a.query('set statement_timeout = 99');
    await a.query('discard all');
    expect(await timeoutOn(a, 1)).toBe('4321ms');
  });
});

describe('what the client is told at login is what PostgreSQL tells it', () => {
  const refused: [string, Record<string, string>][] = [
    ['an unknown name without a dot (42704)', { no_such_setting: '1' }],
    ['a bad value (22023)', { DateStyle: 'nonsense' }],
    ['a bad value in options', { options: '-c statement_timeout=soon' }],
    ['a parameter only a restart sets (55P02)', { shared_buffers: '10MB' }],
    ['-c without a value (42601)', { options: '-c foo' }],
    ['an unknown switch (42601)', { options: '-x' }],
    ['an unknown name before a bad switch', { options: '-c no_such=1 -c foo' }],
    ['a word that is not a switch', { options: 'stray -c search_path=x' }],
    ['a bad one after good ones', { application_name: 'ok', 'x.y': 'fine', TimeZone: 'Mars/Olympus' }],
  ];

  it.each(refused)(
    'refuses %s after AuthenticationOk, with the FATAL PostgreSQL sends',
    async (_what, params) => {
      const expected = loginView(await login(cluster.servers[0].port, params));
      expect(expected.types).toBe('Rok E');
      expect(expected.errors[0].S).toBe('FATAL');
      for (const proxy of [sessionMode, transactionMode, sharded]) {
        const got = loginView(await login(proxy.port, params));
        expect(got.types).toBe(expected.types);
        expect(got.errors).toEqual(expected.errors);
      }
    },
  );

  it('refuses the same bad packet again (from the cache) the same way', async () => {
    const params = { no_such_setting: 'again' };
    const first = loginView(await login(transactionMode.port, params));
    const second = loginView(await login(transactionMode.port, params));
    expect(first.errors[0].C).toBe('42704');
    expect(second).toEqual(first);
  });

  const accepted: [string, Record<string, string>][] = [
    ['DateStyle and TimeZone in their own spelling', { datestyle: 'iso,dmy', TIMEZONE: 'utc' }],
    ['a non-ASCII application_name', { application_name: 'héllo' }],
    ['an application_name cut to 63 bytes, with a NOTICE', { application_name: 'a'.repeat(80) }],
    ['a reported parameter set through options', { options: '-c default_transaction_read_only=yes' }],
    ['client_encoding in lower case', { client_encoding: 'utf8' }],
    ['switches standing for settings', { options: '-e -fs' }],
  ];

  it.each(accepted)('reports %s as PostgreSQL does', async (_what, params) => {
    const expected = loginView(await login(cluster.servers[0].port, params));
    expect(expected.types).toMatch(/^Rok (N )?K Z$/);
    for (const proxy of [sessionMode, transactionMode, sharded]) {
      for (let i = 0; i < 2; i++) {
        // twice: the second login is answered from the cache
        const got = loginView(await login(proxy.port, params));
        expect(got).toEqual(expected);
      }
    }
  });
});

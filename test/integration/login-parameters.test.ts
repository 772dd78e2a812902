// What a client is told at login (ParameterStatus) follows the server: the proxy builds the login frames once per set of
// server values and shares them between logins, and a server whose values changed (here ALTER DATABASE … SET, seen by
// the pool's next new connection; a reload that moves the pool to another server goes the same way) gives the next
// logins the new values, as a direct connection would. Regression: the pool kept its first server's values forever.
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
import { parameterStatuses, RawClient } from '../helpers/raw-client.js';
import { superuserClient } from '../helpers/clients/direct.js';

let cluster: PgCluster;
let proxy: TestProxy;

/** The ParameterStatus values a login is told, by name. */
async function loginStatus(
  port: number,
  params: Record<string, string> = {},
): Promise<Record<string, string>> {
  const raw = await RawClient.connect(port);
  try {
    return parameterStatuses(
      await raw.loginMessages({ user: APP_USER, database: APP_DB, ...params }, APP_PASSWORD),
    );
  } finally {
    raw.close();
  }
}

async function asSuperuser(sql: string): Promise<void> {
  const c = await superuserClient(cluster.servers[0], APP_DB);
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  cluster = await testServers(1, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { userExtra: 'pool_size = 1' });
});

afterAll(async () => {
  await proxy?.close();
  await asSuperuser(`ALTER DATABASE ${APP_DB} RESET timezone`).catch(() => undefined);
  await cluster?.stop();
});

describe('login ParameterStatus', () => {
  it("tells each login the server's values, with the client's own on top", async () => {
    const first = await loginStatus(proxy.port);
    expect(first.TimeZone).toBeDefined();
    expect(first.server_version).toMatch(/^\d+/);
    expect(await loginStatus(proxy.port)).toEqual(first);
    const mine = await loginStatus(proxy.port, { application_name: 'mine' });
    expect(mine).toEqual({ ...first, application_name: 'mine' });
    expect(await loginStatus(proxy.port)).toEqual(first); // the other client's choice is not shared
  });

  it("tells the next logins a server's new values once the pool has a connection that reports them", async () => {
    const before = await loginStatus(proxy.port);
    const zone = before.TimeZone === 'Asia/Tokyo' ? 'America/Lima' : 'Asia/Tokyo';
    await asSuperuser(`ALTER DATABASE ${APP_DB} SET timezone = '${zone}'`);
    // The pool's connection predates the change: the proxy's server goes, a query through the proxy opens a new one.
    await asSuperuser(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${APP_USER}' AND pid <> pg_backend_pid()`,
    );
    const client = new pg.Client({ connectionString: proxy.url });
    client.on('error', () => undefined);
    await client.connect();
    let isAnswered = false;
    for (let attempt = 0; attempt < 5 && !isAnswered; attempt++) {
      // The terminated server, found dead by a query, fails it: the next one gets a new server.
      isAnswered = await client.query('SELECT 1').then(
        () => true,
        () => false,
      );
    }
    await client.end();
    expect(isAnswered).toBe(true);
    const after = await loginStatus(proxy.port);
    expect(after).toEqual({ ...before, TimeZone: zone });
  });
});

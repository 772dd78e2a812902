// PgDog's load-balancer health endpoint (`healthcheck_port`, issue 17): HTTP `up` (200) while some server pool can
// serve, `down` (503; PgDog: 502) once every pool is unusable (its server stopped: connections gone, the last connect failed),
// `up` again when the server is back. A proxy with no pools yet is up.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';

let cluster: PgCluster;
let proxy: TestProxy;

async function health(): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${proxy.proxy.healthPort ?? 0}/`);
  return { status: res.status, body: await res.text() };
}

async function query(): Promise<string> {
  const c = new pg.Client({ connectionString: proxy.url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('select 1');
    return 'ok';
  } catch (err) {
    return (err as pg.DatabaseError).code ?? (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  cluster = await testServers(1, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    general: 'healthcheck_port = 0\nconnect_timeout = 1000\ncheckout_timeout = 2000',
    userExtra: 'min_pool_size = 0',
  });
});

afterAll(async () => {
  await proxy?.close();
  await cluster?.stop();
});

describe('health endpoint (healthcheck_port)', () => {
  it('answers up with no pools, up while the server serves, down when it is gone, up again after', async () => {
    expect(await health()).toEqual({ status: 200, body: 'up' });
    expect(await query()).toBe('ok');
    expect(await health()).toEqual({ status: 200, body: 'up' });
    const { stopOne, startOne } = cluster;
    if (stopOne === undefined || startOne === undefined) throw new Error('this cluster cannot stop a server');
    await stopOne(0);
    expect(await query()).not.toBe('ok'); // the pool's connections are gone and its connect fails
    expect(await health()).toEqual({ status: 503, body: 'down' });
    await startOne(0);
    expect(await query()).toBe('ok');
    expect(await health()).toEqual({ status: 200, body: 'up' });
  });
});

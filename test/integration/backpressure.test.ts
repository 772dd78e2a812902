// A slow client reading a large result: the proxy must stop reading the server while the client socket is full
// (backpressure), deliver every byte intact (its read buffers are reused only when no write still points into
// them), and keep serving other clients meanwhile.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { query } from '../../src/protocol/messages.js';
import { FrameReader } from '../../src/protocol/frame-reader.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';

const ROWS = 150_000;
const SQL = `select i, repeat(md5(i::text), 4) as payload from generate_series(1, ${ROWS}) i`;

describe('backpressure', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;
  beforeAll(async () => {
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    proxy = await startTestProxy(cluster);
  });
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('streams a large result intact to a client that stalls, while others keep working', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const socket = raw.socket;
    socket.removeAllListeners('data');
    const chunks: Buffer[] = [];
    let total = 0;
    const done = new Promise<void>((resolve) => {
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        total += c.length;
        // ReadyForQuery 'Z' status 'I' ends the reply.
        if (total >= 6 && c.length >= 6 && c[c.length - 6] === 0x5a) resolve();
      });
    });
    socket.pause();
    socket.write(query(SQL));
    // While this client stalls, the proxy must keep serving another one.
    await new Promise((r) => setTimeout(r, 700));
    const other = new pg.Client({ connectionString: proxy.url });
    await other.connect();
    expect((await other.query('select 1 as one')).rows[0].one).toBe(1);
    await other.end();
    socket.resume();
    await done;
    raw.close();

    const rows: string[] = [];
    let commandTag = '';
    const reader = new FrameReader(1 << 30);
    const err = reader.push(Buffer.concat(chunks), (type, frame) => {
      if (type === 0x44) {
        // DataRow: int16 columns, then (int32 len, bytes) per column
        let p = 7;
        const l1 = frame.readInt32BE(p);
        const id = frame.toString('utf8', p + 4, p + 4 + l1);
        p += 4 + l1;
        const l2 = frame.readInt32BE(p);
        rows.push(`${id}:${frame.toString('utf8', p + 4, p + 4 + l2)}`);
      } else if (type === 0x43) commandTag = frame.toString('utf8', 5, frame.length - 1);
    });
    expect(err).toBeNull();
    expect(commandTag).toBe(`SELECT ${ROWS}`);
    expect(rows).toHaveLength(ROWS);
    for (const i of [1, 2, 777, 65_536, ROWS]) {
      const md5 = createHash('md5').update(String(i)).digest('hex');
      expect(rows[i - 1]).toBe(`${i}:${md5.repeat(4)}`);
    }
    // Every row, not just samples: a reused buffer would corrupt some payload somewhere.
    const bad = rows.findIndex(
      (r, idx) =>
        r !==
        `${idx + 1}:${createHash('md5')
          .update(String(idx + 1))
          .digest('hex')
          .repeat(4)}`,
    );
    expect(bad).toBe(-1);
  }, 30_000);
});

// TLS between clients and the proxy: SSLRequest answered 'S' with a configured certificate, encrypted sessions
// with node-postgres and a raw client, plaintext clients alongside, and bad TLS starts that harm no one else.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
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
import { RawClient, errorFields } from '../helpers/raw-client.js';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(80877103, 4);
  return b;
}

/** The socket under a connected node-postgres client (not part of its typed API). */
function streamOf(client: pg.Client): unknown {
  return (client as unknown as { connection: { stream: unknown } }).connection.stream;
}

describe.skipIf(!hasOpenssl)('TLS', () => {
  let cluster: PgCluster;
  let proxy: TestProxy;
  let dir: string;
  let certPem: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-tls-'));
    const certPath = path.join(dir, 'cert.pem');
    const keyPath = path.join(dir, 'key.pem');
    const gen = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-keyout',
        keyPath,
        '-out',
        certPath,
      ],
      { encoding: 'utf8' },
    );
    if (gen.status !== 0) throw new Error(`openssl failed: ${gen.stderr}`);
    certPem = fs.readFileSync(certPath, 'utf8');
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    proxy = await startTestProxy(cluster, {
      general: `tls_certificate = ${JSON.stringify(certPath)}\ntls_private_key = ${JSON.stringify(keyPath)}`,
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('encrypts a node-postgres session that asks for SSL', async () => {
    const client = new pg.Client({ connectionString: proxy.url, ssl: { rejectUnauthorized: false } });
    await client.connect();
    try {
      const stream = streamOf(client);
      expect(stream).toBeInstanceOf(tls.TLSSocket);
      const secure = stream as tls.TLSSocket;
      expect(secure.encrypted).toBe(true);
      expect(secure.getProtocol()).toMatch(/^TLSv1\.[23]$/);
      const res = await client.query<{ n: number }>('select $1::int as n', [5]);
      expect(res.rows[0].n).toBe(5);
    } finally {
      await client.end();
    }
  });

  it('serves the configured certificate (verifiable with it as the CA)', async () => {
    const client = new pg.Client({
      connectionString: proxy.url,
      ssl: { ca: certPem, servername: 'localhost', checkServerIdentity: () => undefined },
    });
    await client.connect();
    try {
      const peer = (streamOf(client) as tls.TLSSocket).getPeerCertificate();
      expect(peer.subject.CN).toBe('localhost');
      expect(peer.fingerprint256).toBe(new X509Certificate(certPem).fingerprint256);
      expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it("answers SSLRequest with 'S' and runs startup, auth and queries over TLS (raw client)", async () => {
    const raw = await RawClient.connect(proxy.port);
    try {
      raw.write(sslRequest());
      expect(await raw.readByte()).toBe('S');
      expect(raw.pending).toBe(0);
      const secure = await raw.startTls({ servername: 'localhost' });
      expect(secure.encrypted).toBe(true);
      await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const res = await raw.query("select 'over tls'");
      expect(res.map((m) => m.type).join('')).toBe('TDCZ');
      expect(res[1].body.toString('utf8', 6)).toBe('over tls');
    } finally {
      raw.close();
    }
  });

  it('still serves plaintext clients', async () => {
    const client = new pg.Client({ connectionString: proxy.url, ssl: false });
    await client.connect();
    try {
      expect(streamOf(client)).not.toBeInstanceOf(tls.TLSSocket);
      expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('checks the password over TLS like in clear', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: proxy.port,
      user: APP_USER,
      password: 'wrong',
      database: APP_DB,
      ssl: { rejectUnauthorized: false },
    });
    client.on('error', () => undefined);
    await expect(client.connect()).rejects.toMatchObject({ code: '28P01' });
    await client.end().catch(() => undefined);
  });

  it('refuses plaintext bytes sent right after SSLRequest (before the answer)', async () => {
    const raw = await RawClient.connect(proxy.port);
    try {
      const startup = Buffer.alloc(8);
      startup.writeInt32BE(8, 0);
      startup.writeInt32BE(196608, 4);
      raw.write(Buffer.concat([sslRequest(), startup]));
      const m = await raw.readMessage(2_000);
      expect(m.type).toBe('E');
      expect(errorFields(m.body).C).toBe('08P01');
      expect(await raw.waitClosed(2_000)).toBe(true);
    } finally {
      raw.close();
    }
  });

  it('drops a client whose TLS handshake is garbage, and others keep working', async () => {
    const watcher = new pg.Client({ connectionString: proxy.url, ssl: { rejectUnauthorized: false } });
    await watcher.connect();
    try {
      await watcher.query('begin');
      const raw = await RawClient.connect(proxy.port);
      try {
        raw.write(sslRequest());
        expect(await raw.readByte()).toBe('S');
        raw.write(Buffer.from('this is not a TLS ClientHello\r\n'.repeat(4)));
        expect(await raw.waitClosed(3_000), 'the proxy should close a failed handshake').toBe(true);
      } finally {
        raw.close();
      }
      expect((await watcher.query('select 1 as one')).rows[0].one).toBe(1);
      await watcher.query('commit');
      const fresh = new pg.Client({ connectionString: proxy.url, ssl: { rejectUnauthorized: false } });
      await fresh.connect();
      expect((await fresh.query('select 2 as two')).rows[0].two).toBe(2);
      await fresh.end();
    } finally {
      await watcher.end();
    }
  });
});

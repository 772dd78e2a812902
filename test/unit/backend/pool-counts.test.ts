// Pool (backend/pool.ts): what it counts as checked out — SHOW POOLS' sv_active, the shutdown's wait, the deadlock
// watch's servers in use — through checkout, release, the idle health check, discard and a server lost in use, against
// a fake backend that logs every connection in at once (AuthenticationOk, ReadyForQuery) and can drop it; when a
// server was last used (SHOW SERVERS) and idle_timeout, which counts from it.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from '../../../src/backend/pool.js';
import type { ServerConnection } from '../../../src/backend/server-connection.js';
import { silentLogger } from '../../../src/logging/logger.js';
import { SYNC } from '../../../src/protocol/messages.js';

const AUTH_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
const READY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A backend that logs any startup packet in and answers each later read with ReadyForQuery; its sockets, to drop them. */
async function fakeBackend(): Promise<{ port: number; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    // The startup packet, then a ReadyForQuery for anything sent (the tests send a Sync at a time).
    socket.once('data', () => {
      socket.write(Buffer.concat([AUTH_OK, READY]));
      socket.on('data', () => socket.write(READY));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

function makePool(port: number, maxSize: number, idleTimeoutMs = 0): Pool {
  const p = new Pool({
    address: { host: '127.0.0.1', port, database: 'db', user: 'u', password: null, shard: 0 },
    maxSize,
    minSize: 0,
    checkoutTimeoutMs: 2000,
    connectTimeoutMs: 2000,
    idleTimeoutMs,
    startupParams: {},
    logger: silentLogger(),
    clientUser: 'u',
    clientDatabase: 'db',
  });
  cleanups.push(() => p.close());
  return p;
}

function acquire(p: Pool): Promise<ServerConnection> {
  return new Promise((resolve, reject) =>
    p.acquire((err, s) => (err !== null || s === null ? reject(err ?? new Error('none')) : resolve(s))),
  );
}

function counts(p: Pool): { active: number; idle: number; total: number; out: number } {
  const { active, idle, total } = p.stats();
  expect(p.activeCount).toBe(active);
  return { active, idle, total, out: [...p.checkedOut()].length };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

describe('Pool: servers checked out', () => {
  it('counts checkouts, releases (twice is once), the idle health check and discards', async () => {
    const { port } = await fakeBackend();
    const p = makePool(port, 3);
    const a = await acquire(p);
    const b = await acquire(p);
    expect(counts(p)).toEqual({ active: 2, idle: 0, total: 2, out: 2 });
    expect(new Set(p.checkedOut())).toEqual(new Set([a, b]));
    p.release(a);
    expect(counts(p)).toEqual({ active: 1, idle: 1, total: 2, out: 1 });
    expect([...p.checkedOut()]).toEqual([b]);
    expect(p.tryAcquire()).toBe(a); // taken again without waiting
    expect(counts(p)).toEqual({ active: 2, idle: 0, total: 2, out: 2 });
    p.release(a);
    p.release(b);
    expect(counts(p)).toEqual({ active: 0, idle: 2, total: 2, out: 0 });
    const checked = p.takeIdle();
    expect(checked).not.toBeNull();
    expect(counts(p)).toEqual({ active: 1, idle: 1, total: 2, out: 1 });
    p.discard(checked as ServerConnection, 'health check failed');
    expect(counts(p)).toEqual({ active: 0, idle: 1, total: 1, out: 0 });
  });

  it('forgets a server lost while checked out, and tells the loss only when a client had it', async () => {
    const { port, sockets } = await fakeBackend();
    const p = makePool(port, 2);
    const lost: string[] = [];
    p.onLostInUse = (reason) => lost.push(reason);
    const a = await acquire(p);
    const b = await acquire(p);
    a.attach({ onServerLost: () => undefined } as never); // a client has it
    p.release(b);
    const checked = p.takeIdle() as ServerConnection; // the health check has b
    expect(checked).toBe(b);
    b.attach({ onServerLost: () => undefined } as never); // the check's own statement is in flight
    expect(counts(p)).toEqual({ active: 2, idle: 0, total: 2, out: 2 });
    for (const s of sockets) s.destroy();
    await until(() => a.isClosed && b.isClosed && p.stats().total === 0);
    expect(counts(p)).toEqual({ active: 0, idle: 0, total: 0, out: 0 });
    expect(lost).toHaveLength(1); // a's; b's is the health check's to report
  });
});

describe('Pool: when a server was last used', () => {
  it('is its last ReadyForQuery, in wall-clock time; idle_timeout retires it counted from there', async () => {
    const { port } = await fakeBackend();
    const p = makePool(port, 1, 300);
    const before = Date.now();
    const a = await acquire(p);
    expect(a.lastUsedAt).toBeGreaterThanOrEqual(before - 1); // logged in: ready then
    expect(a.lastUsedAt).toBeLessThanOrEqual(Date.now() + 1);
    const loggedIn = a.lastUsedMs;
    await new Promise((r) => setTimeout(r, 20));
    a.send(SYNC, 1);
    await until(() => a.pendingReady === 0);
    expect(a.lastUsedMs - loggedIn).toBeGreaterThanOrEqual(15);
    expect(Math.abs(a.lastUsedAt - Date.now())).toBeLessThan(50);
    expect(p.stats().active).toBe(1);
    p.release(a);
    expect(p.stats().idle).toBe(1);
    // The pool's maintenance runs each second: retired within about 1.3 s of its last use.
    await until(() => p.stats().total === 0);
    expect(a.isClosed).toBe(true);
  });
});

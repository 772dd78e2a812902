// A server connection's own state machine (server-connection.ts), without sockets: connecting → idle → active → idle,
// anything → closed (final); who receives its replies is set by attach / detach only.
// sendAhead (a joining shard's BEGIN) holds its bytes so the request sent after it in the same tick leaves in one write.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ServerConnection, type ReplySink } from '../../../src/backend/server-connection.js';

const address = { host: '127.0.0.1', port: 1, database: 'db', user: 'u', password: null, shard: 0 };

const sink: ReplySink = {
  writeToClient: () => true,
  hasPendingWrites: () => false,
  onClientDrain: (resume) => resume(),
  onServerReady: () => undefined,
  onServerParameter: () => undefined,
  onServerLost: () => undefined,
};

describe('ServerConnection state', () => {
  it('refuses a check-out or check-in before the login finished', () => {
    const server = new ServerConnection(address);
    expect(server.state).toBe('connecting');
    expect(() => server.checkOut()).toThrow(/illegal state change connecting → active/);
    expect(() => server.checkIn()).toThrow(/illegal state change connecting → idle/);
    expect(server.state).toBe('connecting');
  });

  it('is closed for good: closing twice is a no-op, checking out a closed server is refused', () => {
    const server = new ServerConnection(address);
    server.destroy('test');
    expect([server.state, server.isClosed]).toEqual(['closed', true]);
    server.terminate('again');
    server.destroy('and again');
    expect(server.state).toBe('closed');
    expect(() => server.checkOut()).toThrow(/illegal state change closed → active/);
    expect(() => server.checkIn()).toThrow(/illegal state change closed → idle/);
  });

  it('attach / detach say who receives replies; terminate detaches', () => {
    const server = new ServerConnection(address);
    expect(server.isAttached).toBe(false);
    server.attach(sink);
    expect(server.isAttached).toBe(true);
    server.detach();
    expect(server.isAttached).toBe(false);
    server.attach(sink);
    server.terminate('done');
    expect(server.isAttached).toBe(false);
  });
});

describe('ServerConnection.sendAhead', () => {
  it('holds its bytes until the end of the tick, so the send after it leaves in the same write', async () => {
    // A stand-in server on loopback: trusts the login (AuthenticationOk, ReadyForQuery), then records what arrives.
    const received: Buffer[] = [];
    const fake = net.createServer((socket) => {
      let loggedIn = false;
      socket.on('data', (chunk: Buffer) => {
        if (loggedIn) return void received.push(chunk);
        loggedIn = true;
        socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49]));
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const port = (fake.address() as net.AddressInfo).port;
    const server = new ServerConnection({ ...address, port });
    try {
      await server.connect(5_000, {});
      server.checkOut();
      server.attach(sink);
      const begin = Buffer.from('BEGIN;');
      const request = Buffer.from('REQUEST');
      server.sendAhead(begin, 0);
      server.send(request, 0);
      // The socket is private: read its queue to see that nothing was written yet (both wait for the uncork).
      const socket = (server as unknown as { socket: net.Socket }).socket;
      expect(socket.writableLength).toBe(begin.length + request.length);
      await new Promise((r) => setImmediate(r));
      expect(socket.writableLength).toBe(0);
      const deadline = Date.now() + 5_000;
      while (Buffer.concat(received).length < 13 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(Buffer.concat(received).toString()).toBe('BEGIN;REQUEST');
    } finally {
      server.destroy('test over');
      await new Promise((r) => fake.close(r));
    }
  });
});

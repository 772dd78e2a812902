// A server connection's own state machine (server-connection.ts), without sockets: connecting → idle → active → idle,
// anything → closed (final); who receives its replies is set by attach / detach only.
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

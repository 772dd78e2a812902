// session-socket: a client socket's events reach the session it belongs to through listeners every socket shares.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { listenToSocket, watchIdle, type SocketOwner } from '../../../src/frontend/session-socket.js';

function recorder(): SocketOwner & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    onData: (chunk) => events.push(`data:${chunk.toString()}`),
    onSocketError: (err) => events.push(`error:${err.message}`),
    onSocketClose: () => events.push('close'),
    onIdleTimeout: () => events.push('idle'),
  };
}

describe('listenToSocket', () => {
  it("sends each socket's data, error and close to its own owner", () => {
    const a = new net.Socket();
    const b = new net.Socket();
    const ownerA = recorder();
    const ownerB = recorder();
    listenToSocket(a, ownerA);
    listenToSocket(b, ownerB);
    a.emit('data', Buffer.from('x'));
    b.emit('data', Buffer.from('y'));
    a.emit('error', new Error('reset'));
    a.emit('close', false);
    expect(ownerA.events).toEqual(['data:x', 'error:reset', 'close']);
    expect(ownerB.events).toEqual(['data:y']);
    a.destroy();
    b.destroy();
  });

  it('adds no closure per socket: every socket has the same three listener functions', () => {
    const a = new net.Socket();
    const b = new net.Socket();
    listenToSocket(a, recorder());
    listenToSocket(b, recorder());
    for (const event of ['data', 'error', 'close']) {
      expect(a.listeners(event)).toHaveLength(1);
      expect(a.listeners(event)[0]).toBe(b.listeners(event)[0]);
    }
    a.destroy();
    b.destroy();
  });
});

describe('watchIdle', () => {
  it('tells the owner on every timeout, not only the first (Node runs a setTimeout callback once)', () => {
    const a = new net.Socket();
    const b = new net.Socket();
    const owner = recorder();
    listenToSocket(a, owner);
    listenToSocket(b, recorder());
    watchIdle(a, 60_000);
    watchIdle(b, 60_000);
    a.emit('timeout');
    a.emit('timeout');
    expect(owner.events).toEqual(['idle', 'idle']);
    expect(a.listeners('timeout')[0]).toBe(b.listeners('timeout')[0]); // shared, no closure per socket
    a.destroy();
    b.destroy();
  });
});

// The request state of a sharded session (request-state.ts), without sockets: one of none / lookup / waiting /
// fan-out / commit at a time, each ended before the next starts; every move allowed or refused as the table says.
import { describe, expect, it } from 'vitest';
import { canMoveWork, RequestState, type RequestWorkKind } from '../../../src/frontend/request-state.js';
import type { Fanout } from '../../../src/frontend/fanout.js';

const fanout = {} as Fanout; // only carried, never called

describe('RequestState', () => {
  it('runs a lookup, then a fan-out, then a commit, each ended before the next', () => {
    const r = new RequestState();
    expect([r.isIdle, r.fanout, r.isCommitting, r.isLookingUp]).toEqual([true, null, false, false]);
    r.move({ kind: 'lookup', what: 'the columns of users' });
    expect([r.isIdle, r.isLookingUp]).toEqual([false, true]);
    r.end('lookup');
    r.move({ kind: 'fanout', fanout });
    expect(r.fanout).toBe(fanout);
    r.end('fanout');
    r.move({ kind: 'committing' });
    expect(r.isCommitting).toBe(true);
    r.end('committing');
    expect(r.work).toEqual({ kind: 'none' });
  });

  it('waits for a phase 2 on its own kind, not as a lookup, and refuses a fan-out before the wait ended', () => {
    const r = new RequestState();
    r.move({ kind: 'waiting', what: "the end of a committed transaction's phase 2" });
    expect([r.isIdle, r.isWaiting, r.isLookingUp, r.fanout]).toEqual([false, true, false, null]);
    expect(() => r.move({ kind: 'fanout', fanout })).toThrow(/illegal state change waiting → fanout/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is waiting/);
    r.end('waiting');
    expect([r.isIdle, r.isWaiting]).toEqual([true, false]);
  });

  it('refuses a second piece of work while one runs, and ending what is not running', () => {
    const r = new RequestState();
    expect(() => r.end('fanout')).toThrow(/fanout ended while the state is none/);
    r.move({ kind: 'fanout', fanout });
    expect(() => r.move({ kind: 'committing' })).toThrow(/illegal state change fanout → committing/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is fanout/);
    expect(r.fanout).toBe(fanout);
  });
});

describe('request state moves', () => {
  const all: RequestWorkKind[] = ['none', 'lookup', 'waiting', 'fanout', 'committing'];
  const allowed: Record<RequestWorkKind, RequestWorkKind[]> = {
    none: ['lookup', 'waiting', 'fanout', 'committing'],
    lookup: ['none'],
    waiting: ['none'],
    fanout: ['none'],
    committing: ['none'],
  };
  for (const from of all)
    for (const to of all)
      it(`${allowed[from].includes(to) ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMoveWork(from, to)).toBe(allowed[from].includes(to));
      });
});

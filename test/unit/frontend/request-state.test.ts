// The request state of a sharded session (request-state.ts), without sockets: one of idle / acquiring / single / own /
// lookup / waiting / fan-out / commit at a time, each ended before the next starts; every move allowed or refused as
// the table says, through the one mover; busy, active and waiting for a server read from it.
import { describe, expect, it } from 'vitest';
import {
  ACQUIRING,
  canMoveWork,
  COMMITTING,
  OWN,
  RequestState,
  type RequestWork,
  type RequestWorkKind,
} from '../../../src/frontend/request-state.js';
import type { Fanout } from '../../../src/frontend/fanout.js';

const fanout = {} as Fanout; // only carried, never called

describe('RequestState', () => {
  it('runs a lookup, then a fan-out, then a commit, each ended before the next', () => {
    const r = new RequestState(2);
    expect([r.isIdle, r.fanout, r.isCommitting, r.isLookingUp]).toEqual([true, null, false, false]);
    r.move({ kind: 'lookup', what: 'the columns of users' });
    expect([r.isIdle, r.isLookingUp]).toEqual([false, true]);
    r.end('lookup');
    r.move({ kind: 'fanout', fanout });
    expect(r.fanout).toBe(fanout);
    r.end('fanout');
    r.move(COMMITTING);
    expect(r.isCommitting).toBe(true);
    r.end('committing');
    expect(r.work).toEqual({ kind: 'idle' });
  });

  it('waits for a phase 2 on its own kind, not as a lookup, and refuses a fan-out before the wait ended', () => {
    const r = new RequestState(2);
    r.move({ kind: 'waiting', what: "the end of a committed transaction's phase 2" });
    expect([r.isIdle, r.isWaiting, r.isLookingUp, r.fanout, r.isActive]).toEqual([
      false,
      true,
      false,
      null,
      false,
    ]);
    expect(() => r.move({ kind: 'fanout', fanout })).toThrow(/illegal state change waiting → fanout/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is waiting/);
    r.end('waiting');
    expect([r.isIdle, r.isWaiting]).toEqual([true, false]);
  });

  it('refuses a second piece of work while one runs, and ending what is not running', () => {
    const r = new RequestState(2);
    expect(() => r.end('fanout')).toThrow(/fanout ended while the state is idle/);
    r.move({ kind: 'fanout', fanout });
    expect(() => r.move(COMMITTING)).toThrow(/illegal state change fanout → committing/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is fanout/);
    expect(r.fanout).toBe(fanout);
  });

  it('a checkout: waiting for a server, not active, and nothing else may start before the servers are there', () => {
    const r = new RequestState(2);
    r.move(ACQUIRING);
    expect([r.isIdle, r.isAcquiring, r.isActive, r.singleShard]).toEqual([false, true, false, null]);
    expect(() => r.move(r.single(0))).toThrow(/illegal state change acquiring → single/);
    expect(() => r.move(ACQUIRING)).toThrow(/illegal state change acquiring → acquiring/);
    r.end('acquiring');
    expect([r.isIdle, r.isAcquiring]).toEqual([true, false]);
  });

  it('a single-shard request: its shard known, active, and the same value each time (no allocation per request)', () => {
    const r = new RequestState(3);
    expect(r.single(2)).toBe(r.single(2));
    expect(r.single(1)).toEqual({ kind: 'single', shard: 1 });
    r.move(r.single(2));
    expect([r.isIdle, r.isActive, r.singleShard, r.fanout]).toEqual([false, true, 2, null]);
    expect(() => r.move(r.single(1))).toThrow(/illegal state change single → single/);
    expect(() => r.end('fanout')).toThrow(/fanout ended while the state is single/);
    r.end('single');
    expect([r.isIdle, r.singleShard]).toEqual([true, null]);
  });

  it("statements of the proxy's own: active, one at a time", () => {
    const r = new RequestState(2);
    r.move(OWN);
    expect([r.isIdle, r.isActive, r.isAcquiring]).toEqual([false, true, false]);
    expect(() => r.move(OWN)).toThrow(/illegal state change own → own/);
    r.end('own');
    expect(r.isIdle).toBe(true);
  });
});

describe('request state moves', () => {
  const all: RequestWorkKind[] = [
    'idle',
    'acquiring',
    'single',
    'own',
    'lookup',
    'waiting',
    'fanout',
    'committing',
  ];
  const busy = all.filter((k) => k !== 'idle');
  const allowed: Record<RequestWorkKind, RequestWorkKind[]> = {
    idle: busy,
    acquiring: ['idle'],
    single: ['idle'],
    own: ['idle'],
    lookup: ['idle'],
    waiting: ['idle'],
    fanout: ['idle'],
    committing: ['idle'],
  };
  const member = (r: RequestState, kind: RequestWorkKind): RequestWork => {
    switch (kind) {
      case 'idle':
        return { kind: 'idle' };
      case 'acquiring':
        return ACQUIRING;
      case 'single':
        return r.single(0);
      case 'own':
        return OWN;
      case 'lookup':
        return { kind: 'lookup', what: 'the columns of users' };
      case 'waiting':
        return { kind: 'waiting', what: 'a phase 2' };
      case 'fanout':
        return { kind: 'fanout', fanout };
      case 'committing':
        return COMMITTING;
    }
  };
  /** A state at `kind`, reached through allowed moves only. */
  const at = (kind: RequestWorkKind): RequestState => {
    const r = new RequestState(1);
    if (kind !== 'idle') r.move(member(r, kind));
    return r;
  };
  for (const from of all)
    for (const to of all) {
      const isAllowed = allowed[from].includes(to);
      it(`${isAllowed ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMoveWork(from, to)).toBe(isAllowed);
        const r = at(from);
        const before = r.work;
        if (isAllowed) {
          r.move(member(r, to));
          expect(r.kind).toBe(to);
        } else {
          expect(() => r.move(member(r, to))).toThrow(`illegal state change ${from} → ${to}`);
          expect(r.work).toBe(before); // a refused move changes nothing
        }
      });
    }
  for (const kind of busy)
    it(`ends ${kind} only from ${kind}, back to idle`, () => {
      const r = at(kind);
      for (const other of busy)
        if (other !== kind)
          expect(() => r.end(other as Exclude<RequestWorkKind, 'idle'>)).toThrow(/ended while the state is/);
      r.end(kind as Exclude<RequestWorkKind, 'idle'>);
      expect(r.isIdle).toBe(true);
    });
});

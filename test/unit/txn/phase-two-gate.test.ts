// The at_decision read-your-writes gate (txn/phase-two-gate.ts) without sockets or real timers: which shards are
// pending, the proxy-wide counter the hot path reads, waits released when the last branch of their shards commits,
// the bound (fake clock) naming shard and transaction, and a withdrawn wait never called back.
import { describe, expect, it } from 'vitest';
import { PhaseTwoGate, type PhaseTwoBlocker, type PhaseTwoCount } from '../../../src/txn/phase-two-gate.js';
import { VisibilityFences } from '../../../src/txn/visibility-fence.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function waiter(gate: PhaseTwoGate, shards: number[], timeoutMs: number) {
  const state = { cleared: 0, timedOut: null as PhaseTwoBlocker | null };
  const cancel = gate.wait(
    shards,
    timeoutMs,
    () => state.cleared++,
    (b) => (state.timedOut = b),
  );
  return { state, cancel };
}

describe('PhaseTwoGate', () => {
  it('counts unfinished branches proxy-wide and clears them branch by branch', () => {
    const count: PhaseTwoCount = { pending: 0 };
    const gate = new PhaseTwoGate(3, new FakeClock(), count);
    gate.open('t1', [1, 2]);
    gate.open('t1', [1]); // the same branch twice counts once
    gate.open('t2', [2]);
    expect(count.pending).toBe(3);
    expect(gate.firstPending([0])).toBe(-1);
    expect(gate.firstPending([0, 2])).toBe(2);
    expect(gate.pendingOn(2)).toEqual(['t1', 't2']);
    gate.close('t1', 2);
    gate.close('t1', 2); // already closed: no change
    expect(count.pending).toBe(2);
    gate.closeAll('t1');
    gate.closeAll('t2');
    expect(count.pending).toBe(0);
    expect(gate.firstPending([0, 1, 2])).toBe(-1);
  });

  it('answers at once when the shards are clear, else when their last branch commits', () => {
    const gate = new PhaseTwoGate(2, new FakeClock(), { pending: 0 });
    const clear = waiter(gate, [0, 1], 1000);
    expect(clear.state.cleared).toBe(1);
    gate.open('t1', [1]);
    gate.open('t2', [1]);
    const other = waiter(gate, [0], 1000);
    expect(other.state.cleared).toBe(1); // shard 0 is not pending
    const blocked = waiter(gate, [0, 1], 1000);
    expect(blocked.state.cleared).toBe(0);
    gate.close('t1', 1);
    expect(blocked.state.cleared).toBe(0); // t2 still unfinished there
    gate.close('t2', 1);
    expect(blocked.state.cleared).toBe(1);
    expect(blocked.state.timedOut).toBeNull();
  });

  it('waits only for the branches unfinished when it started: later commits cannot starve it', () => {
    const gate = new PhaseTwoGate(2, new FakeClock(), { pending: 0 });
    gate.open('t1', [1]);
    const w = waiter(gate, [1], 1000);
    gate.open('t2', [1]); // answered after the wait began: the reader need not see it
    expect(w.state.cleared).toBe(0);
    gate.close('t1', 1);
    expect(w.state.cleared).toBe(1);
    expect(gate.firstPending([1])).toBe(1); // t2 still pending for requests that come now
  });

  it('gives up at the bound naming the shard and the transaction, and never calls back a withdrawn wait', () => {
    const clock = new FakeClock();
    const gate = new PhaseTwoGate(2, clock, { pending: 0 });
    gate.open('t9', [1]);
    const late = waiter(gate, [0, 1], 500);
    const withdrawn = waiter(gate, [1], 500);
    withdrawn.cancel();
    clock.advance(499);
    expect(late.state.timedOut).toBeNull();
    clock.advance(1);
    expect(late.state.timedOut).toEqual({ shard: 1, txids: ['t9'] });
    gate.close('t9', 1);
    expect(late.state.cleared).toBe(0);
    expect(withdrawn.state).toEqual({ cleared: 0, timedOut: null });
  });

  it('shares one counter among the fences of every database', () => {
    const fences = new VisibilityFences(new FakeClock());
    fences.of('a', 2).phaseTwo.open('t1', [0]);
    fences.of('b', 3).phaseTwo.open('t2', [2]);
    expect(fences.phaseTwoCount.pending).toBe(2);
    fences.of('a', 2).phaseTwo.closeAll('t1');
    expect(fences.phaseTwoCount.pending).toBe(1);
  });
});

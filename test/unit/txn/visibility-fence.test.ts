// The visibility fence's rules, without sockets or real timers: readers share, writers share among themselves and
// exclude readers, entries in shard order, writers preferred over new readers, a waiting reader stops new writers,
// the reader's bound (fake clock) naming what blocked it, and the wait counters.
import { describe, expect, it } from 'vitest';
import { VisibilityFence, VisibilityFences, type FenceBlocker } from '../../../src/txn/visibility-fence.js';
import { FakeClock } from '../../helpers/fake-clock.js';

/** A reader entering `shards`; `entered` and `timedOut` tell what happened. */
function reader(fence: VisibilityFence, shards: number[], timeoutMs = 0) {
  const state = { entered: false, timedOut: null as FenceBlocker | null };
  const hold = fence.enterRead(
    shards,
    timeoutMs,
    () => (state.entered = true),
    (b) => (state.timedOut = b),
  );
  return { state, hold };
}

/** A writer entering `shards`; `entered()` after the microtasks ran. */
function writer(fence: VisibilityFence, shards: number[], label: string) {
  let isEntered = false;
  const hold = fence.enterWrite(shards, label).then((h) => {
    isEntered = true;
    return h;
  });
  return { hold, entered: () => isEntered };
}

const ticks = () => new Promise((r) => setTimeout(r, 0));

describe('VisibilityFence', () => {
  it('lets readers share shards and enters at once when nothing is held', () => {
    const fence = new VisibilityFence(2, new FakeClock());
    const a = reader(fence, [0, 1]);
    const b = reader(fence, [1, 0]);
    expect(a.state.entered).toBe(true);
    expect(b.state.entered).toBe(true);
    expect(fence.totals().readerWaits).toBe(0);
  });

  it('lets writers share shards with each other (commits do not wait for one another)', async () => {
    const fence = new VisibilityFence(2, new FakeClock());
    const w1 = writer(fence, [0, 1], 't1');
    const w2 = writer(fence, [0, 1], 't2');
    await ticks();
    expect(w1.entered()).toBe(true);
    expect(w2.entered()).toBe(true);
    expect(fence.holdersOf(0).sort()).toEqual(['t1', 't2']);
  });

  it('makes a reader wait for a writer holding one of its shards, and enter when it releases', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const w = writer(fence, [1], 't1');
    await ticks();
    const r = reader(fence, [0, 1]);
    expect(r.state.entered).toBe(false);
    clock.advance(7);
    (await w.hold).release();
    expect(r.state.entered).toBe(true);
    expect(fence.totals().readerWaits).toBe(1);
    expect(fence.totals().readerWaitMs).toBe(7);
  });

  it('makes a writer wait for a reader holding its shards, and enter when the reader releases', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const r = reader(fence, [0, 1]);
    const w = writer(fence, [0, 1], 't1');
    await ticks();
    expect(w.entered()).toBe(false);
    clock.advance(3);
    r.hold.release();
    await ticks();
    expect(w.entered()).toBe(true);
    expect(fence.totals().writerWaits).toBe(1);
    expect(fence.totals().writerWaitMs).toBe(3);
  });

  it('prefers writers: a waiting writer stops new readers, who enter only after it released', async () => {
    const fence = new VisibilityFence(1, new FakeClock());
    const r1 = reader(fence, [0]);
    const w = writer(fence, [0], 't1');
    const r2 = reader(fence, [0]);
    expect(r2.state.entered).toBe(false); // readers hold, but a writer waits: no new reader joins
    r1.hold.release();
    await ticks();
    expect(w.entered()).toBe(true);
    expect(r2.state.entered).toBe(false);
    (await w.hold).release();
    expect(r2.state.entered).toBe(true);
  });

  it('is phase-fair: a waiting reader stops new writers, so writers cannot starve readers', async () => {
    const fence = new VisibilityFence(1, new FakeClock());
    const w1 = writer(fence, [0], 't1');
    await ticks();
    const r = reader(fence, [0]);
    const w2 = writer(fence, [0], 't2');
    await ticks();
    expect(w2.entered()).toBe(false); // writers hold, but a reader waits: the next writer queues behind it
    (await w1.hold).release();
    expect(r.state.entered).toBe(true);
    await ticks();
    expect(w2.entered()).toBe(false);
    r.hold.release();
    await ticks();
    expect(w2.entered()).toBe(true);
  });

  it('takes entries in shard order, whatever order the request lists them in (no deadlock)', async () => {
    const fence = new VisibilityFence(3, new FakeClock());
    const w = writer(fence, [2], 't1');
    await ticks();
    const r = reader(fence, [2, 0]); // takes 0, waits at 2
    const w2 = writer(fence, [0, 1], 't2'); // waits at 0 behind the reader holding it
    await ticks();
    expect(r.state.entered).toBe(false);
    expect(w2.entered()).toBe(false);
    (await w.hold).release();
    expect(r.state.entered).toBe(true);
    r.hold.release();
    await ticks();
    expect(w2.entered()).toBe(true);
  });

  it('bounds a waiting reader: withdrawn after the bound, told the shard and the writer holding it', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const w = writer(fence, [1], 'tx-42');
    await ticks();
    const r = reader(fence, [0, 1], 100);
    clock.advance(99);
    expect(r.state.timedOut).toBeNull();
    clock.advance(1);
    expect(r.state.entered).toBe(false);
    expect(r.state.timedOut).toEqual({ shard: 1, holders: ['tx-42'], isSnapshotSlow: false });
    expect(fence.totals().readerTimeouts).toBe(1);
    // Its shard 0 was given back: a writer of shard 0 enters at once.
    const w0 = writer(fence, [0], 'tx-43');
    await ticks();
    expect(w0.entered()).toBe(true);
    // Its release after the timeout does nothing; the writer's release lets nothing wrong through.
    r.hold.release();
    (await w.hold).release();
    expect(r.state.entered).toBe(false);
  });

  it('bounds a reader that entered but did not finish its snapshots in time, and frees its shards', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const r = reader(fence, [0, 1], 50);
    expect(r.state.entered).toBe(true);
    const w = writer(fence, [0, 1], 't1');
    await ticks();
    expect(w.entered()).toBe(false);
    clock.advance(50);
    expect(r.state.timedOut).toEqual({ shard: 1, holders: [], isSnapshotSlow: true });
    await ticks();
    expect(w.entered()).toBe(true);
  });

  it('does not fire the bound of a reader released in time', () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const r = reader(fence, [0, 1], 50);
    r.hold.release();
    clock.advance(100);
    expect(r.state.timedOut).toBeNull();
    expect(fence.totals().readerTimeouts).toBe(0);
  });

  it('a reader past its bound lets the writer waiting for it in, and the readers queued behind that writer after it', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(1, clock);
    const r1 = reader(fence, [0], 10);
    const w = writer(fence, [0], 't1'); // waits for r1
    const r2 = reader(fence, [0], 1000); // waits behind w
    clock.advance(10); // r1 times out and releases → w enters
    await ticks();
    expect(r1.state.timedOut).not.toBeNull();
    expect(w.entered()).toBe(true);
    expect(r2.state.entered).toBe(false);
    (await w.hold).release();
    expect(r2.state.entered).toBe(true);
  });

  it('keeps one fence per database, with counters per shard', () => {
    const fences = new VisibilityFences(new FakeClock());
    const a = fences.of('a', 2);
    expect(fences.of('a', 2)).toBe(a);
    expect(fences.of('b', 2)).not.toBe(a);
    expect(fences.countersOf('a', 1)).toBe(a.counters[1]);
    expect(fences.countersOf('c', 0)).toBeNull();
  });

  it('keeps the fence of a database whose shard count changes: a reader still waits for a section open before', async () => {
    // A reload keeps a database's running shards (lifecycle/reload-plan.ts), but the fence must not rely on it: a new
    // fence would not know the writer below, and a reader taking it would see that commit on one shard only.
    const fences = new VisibilityFences(new FakeClock());
    const before = fences.of('a', 2);
    const w = writer(before, [0, 1], 't1');
    await ticks();
    expect(w.entered()).toBe(true);
    const after = fences.of('a', 3);
    expect(after).toBe(before);
    expect(after.holdersOf(1)).toEqual(['t1']);
    const r = reader(after, [1, 2]);
    expect(r.state.entered).toBe(false); // waits for t1 on shard 1
    (await w.hold).release();
    expect(r.state.entered).toBe(true);
    r.hold.release();
    // The added shard is fenced like the others, and counted.
    const w2 = writer(after, [2], 't2');
    await ticks();
    const r2 = reader(fences.of('a', 3), [2]);
    expect(r2.state.entered).toBe(false);
    expect(fences.countersOf('a', 2)).not.toBeNull();
    (await w2.hold).release();
    expect(r2.state.entered).toBe(true);
    // Fewer shards: the fence and its entries stay (a shard no longer configured is never asked for).
    expect(fences.of('a', 2)).toBe(before);
  });

  it("keeps a database's phase-2 branches when its shard count changes", () => {
    const fences = new VisibilityFences(new FakeClock());
    fences.of('a', 2).phaseTwo.open('t1', [0, 1]);
    const gate = fences.of('a', 3).phaseTwo;
    expect(gate.firstPending([1, 2])).toBe(1);
    gate.open('t2', [2]);
    expect(gate.pendingOn(2)).toEqual(['t2']);
    expect(fences.phaseTwoCount.pending).toBe(3);
    gate.closeAll('t1');
    gate.closeAll('t2');
    expect(fences.phaseTwoCount.pending).toBe(0);
  });
});

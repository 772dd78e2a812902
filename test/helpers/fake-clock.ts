// A clock moved by hand for unit tests of timed logic (the visibility fence, the phase-two gate, the block cut):
// `now()` reads it, timers fire when `advance` passes them. No real time passes.
import type { FenceClock } from '../../src/txn/visibility-fence.js';

export class FakeClock implements FenceClock {
  t = 0;
  private timers: { at: number; fn: () => void; isLive: boolean }[] = [];
  now(): number {
    return this.t;
  }
  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + ms, fn, isLive: true };
    this.timers.push(timer);
    return () => (timer.isLive = false);
  }
  advance(ms: number): void {
    this.t += ms;
    for (const timer of this.timers.filter((x) => x.isLive && x.at <= this.t)) {
      timer.isLive = false;
      timer.fn();
    }
  }
}

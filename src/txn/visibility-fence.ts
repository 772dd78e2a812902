// The atomic-visibility fence (issue 14): per shard, readers taking their snapshots and writers making a cross-shard
// transaction visible exclude each other, so no reader's snapshots fall on both sides of one transaction's commit.
// Pure: no sockets, no timers of its own (a FenceClock is passed in), no logging.
//
// Rules (docs/plans/atomic-visibility.md):
// - one entry per shard; a request takes its entries in shard order (no deadlock between multi-shard requests);
// - readers share an entry; writers share it with each other (two commits need not wait for one another), never
//   with readers;
// - phase-fair: a waiting writer stops new readers (writers preferred: phase 2 is never starved), a waiting reader
//   stops new writers (a reader waits for at most one writer phase); waiters are granted in arrival order by phase;
// - a reader's section (waiting + holding) is bounded: past `timeoutMs` it is withdrawn, its entries released, and
//   told which shard and holder blocked it. Writers are not bounded here: readers' bounds bound their waits.
// Each fence also carries its database's PhaseTwoGate (phase-two-gate.ts: two_phase_commit_reply = "at_decision").

import { performance } from 'node:perf_hooks';
import { PhaseTwoGate, type PhaseTwoCount } from './phase-two-gate.js';

/** Time and timers, injected (tests use a fake clock). */
export interface FenceClock {
  now(): number;
  /** Run `fn` after `ms`; the returned function cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: FenceClock = {
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** Counters of one shard's entry for SHOW STATS and metrics (plain increments; a wait counts on the shard waited at first). */
export interface FenceCounters {
  /** Readers that had to wait for a writer before their snapshots, and their total wait. */
  readerWaits: number;
  readerWaitMs: number;
  /** Writers that had to wait for readers before making a transaction visible, and their total wait. */
  writerWaits: number;
  writerWaitMs: number;
  /** Readers cancelled because their section exceeded the bound (40001 to the client). */
  readerTimeouts: number;
}

export function newFenceCounters(): FenceCounters {
  return { readerWaits: 0, readerWaitMs: 0, writerWaits: 0, writerWaitMs: 0, readerTimeouts: 0 };
}

/** What blocked a reader that timed out: the shard, and who held it (a writer's label), if a writer did. */
export interface FenceBlocker {
  readonly shard: number;
  /** Labels of the writers holding or queued first on that shard (txids); empty when readers held it. */
  readonly holders: readonly string[];
  /** The reader had all its entries and was still taking its snapshots. */
  readonly isSnapshotSlow: boolean;
}

/** A section in the fence; release() is idempotent. */
export interface FenceHold {
  release(): void;
}

type Mode = 'read' | 'write';

interface Waiter {
  readonly mode: Mode;
  readonly label: string;
  readonly grant: () => void;
}

/** One shard's entry. */
class Entry {
  readers = 0;
  /** Writers holding it, by label (a label may hold twice: counted). */
  readonly writers = new Map<string, number>();
  writerCount = 0;
  readonly queue: Waiter[] = [];

  canGrant(mode: Mode): boolean {
    return mode === 'read' ? this.writerCount === 0 : this.readers === 0;
  }

  take(mode: Mode, label: string): void {
    if (mode === 'read') this.readers++;
    else {
      this.writerCount++;
      this.writers.set(label, (this.writers.get(label) ?? 0) + 1);
    }
  }

  put(mode: Mode, label: string): void {
    if (mode === 'read') this.readers--;
    else {
      this.writerCount--;
      const n = (this.writers.get(label) ?? 1) - 1;
      if (n === 0) this.writers.delete(label);
      else this.writers.set(label, n);
    }
  }

  /** Grant waiters from the head while they are compatible (one phase at a time). */
  wake(): void {
    const queue = this.queue;
    while (queue.length > 0 && this.canGrant(queue[0].mode)) {
      const w = queue.shift() as Waiter;
      this.take(w.mode, w.label);
      w.grant();
    }
  }

  holderLabels(): string[] {
    const out = [...this.writers.keys()];
    for (const w of this.queue) if (w.mode === 'write' && !out.includes(w.label)) out.push(w.label);
    return out;
  }
}

/** One request's walk over its entries, in shard order. */
class Section implements FenceHold {
  /** Index into `shards` of the next entry to take. */
  private next = 0;
  private waiting: Waiter | null = null;
  private isReleased = false;
  private waitStart = -1;
  /** The first shard this section had to wait at (its wait is counted there). */
  private waitShard = -1;

  constructor(
    private readonly fence: VisibilityFence,
    private readonly shards: readonly number[],
    private readonly mode: Mode,
    private readonly label: string,
    private readonly onEntered: () => void,
  ) {}

  /** Take entries until one must be waited for, or all are held. */
  advance(): void {
    const entries = this.fence.entries;
    while (this.next < this.shards.length) {
      const entry = entries[this.shards[this.next]];
      if (entry.queue.length === 0 && entry.canGrant(this.mode)) {
        entry.take(this.mode, this.label);
        this.next++;
        continue;
      }
      if (this.waitStart < 0) {
        this.waitStart = this.fence.clock.now();
        this.waitShard = this.shards[this.next];
      }
      const waiter: Waiter = {
        mode: this.mode,
        label: this.label,
        grant: () => {
          this.waiting = null;
          this.next++;
          this.advance();
        },
      };
      this.waiting = waiter;
      entry.queue.push(waiter);
      return;
    }
    if (this.waitStart >= 0)
      this.fence.noteWait(this.mode, this.waitShard, this.fence.clock.now() - this.waitStart);
    this.onEntered();
  }

  get isEntered(): boolean {
    return !this.isReleased && this.next === this.shards.length;
  }

  /** Where the section waits now (null: it holds every entry). */
  blocker(): FenceBlocker {
    if (this.next < this.shards.length) {
      const shard = this.shards[this.next];
      return { shard, holders: this.fence.entries[shard].holderLabels(), isSnapshotSlow: false };
    }
    return { shard: this.shards[this.shards.length - 1] ?? 0, holders: [], isSnapshotSlow: true };
  }

  release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    const entries = this.fence.entries;
    const waiting = this.waiting;
    if (waiting !== null) {
      const queue = entries[this.shards[this.next]].queue;
      queue.splice(queue.indexOf(waiting), 1);
      this.waiting = null;
      entries[this.shards[this.next]].wake(); // it may have been the head blocking others
    }
    for (let i = 0; i < this.next; i++) {
      const entry = entries[this.shards[i]];
      entry.put(this.mode, this.label);
      entry.wake();
    }
    this.next = 0;
  }
}

/** One sharded database's fence. */
export class VisibilityFence {
  /** @internal one per shard */
  readonly entries: Entry[];
  readonly clock: FenceClock;
  /** Per shard. */
  readonly counters: FenceCounters[];
  /** Shards with a branch answered at its decision and not committed yet (two_phase_commit_reply = "at_decision"). */
  readonly phaseTwo: PhaseTwoGate;

  constructor(
    shardCount: number,
    clock: FenceClock = systemClock,
    phaseTwoCount: PhaseTwoCount = { pending: 0 },
  ) {
    this.entries = Array.from({ length: shardCount }, () => new Entry());
    this.clock = clock;
    this.counters = Array.from({ length: shardCount }, newFenceCounters);
    this.phaseTwo = new PhaseTwoGate(shardCount, clock, phaseTwoCount);
  }

  /**
   * Cover `shardCount` shards: entries (and phase-2 sets) added for the new ones; those held or waited for now stay
   * as they are, and none is ever removed.
   */
  grow(shardCount: number): void {
    while (this.entries.length < shardCount) {
      this.entries.push(new Entry());
      this.counters.push(newFenceCounters());
    }
    this.phaseTwo.grow(shardCount);
  }

  /** The counters of every shard added up. */
  totals(): FenceCounters {
    const sum = newFenceCounters();
    for (const c of this.counters) {
      sum.readerWaits += c.readerWaits;
      sum.readerWaitMs += c.readerWaitMs;
      sum.writerWaits += c.writerWaits;
      sum.writerWaitMs += c.writerWaitMs;
      sum.readerTimeouts += c.readerTimeouts;
    }
    return sum;
  }

  /**
   * A writer: resolves once every shard of `shards` is held against readers (taken in shard order). `label` names it
   * in readers' timeout errors (its txid). The caller releases the hold when every shard acknowledged.
   */
  enterWrite(shards: readonly number[], label: string): Promise<FenceHold> {
    return new Promise((resolve) => {
      const section: Section = new Section(
        this,
        sortedShards(shards, this.entries.length),
        'write',
        label,
        () => resolve(section),
      );
      section.advance();
    });
  }

  /**
   * A reader of `shards`: `onEntered` once every entry is held shared (maybe at once, synchronously). If the section
   * is not released within `timeoutMs` (waiting included), it is released and `onTimeout` gets what blocked it; a
   * later release() does nothing. `timeoutMs` <= 0: no bound.
   */
  enterRead(
    shards: readonly number[],
    timeoutMs: number,
    onEntered: () => void,
    onTimeout: (blocker: FenceBlocker) => void,
  ): FenceHold {
    let cancelTimer: (() => void) | null = null;
    const section = new Section(this, sortedShards(shards, this.entries.length), 'read', '', onEntered);
    const hold: FenceHold = {
      release: () => {
        cancelTimer?.();
        cancelTimer = null;
        section.release();
      },
    };
    if (timeoutMs > 0) {
      cancelTimer = this.clock.setTimer(timeoutMs, () => {
        cancelTimer = null;
        const blocker = section.blocker();
        section.release();
        this.counters[blocker.shard].readerTimeouts++;
        onTimeout(blocker);
      });
    }
    section.advance();
    return hold;
  }

  /** @internal */
  noteWait(mode: Mode, shard: number, ms: number): void {
    const c = this.counters[shard];
    if (mode === 'read') {
      c.readerWaits++;
      c.readerWaitMs += ms;
    } else {
      c.writerWaits++;
      c.writerWaitMs += ms;
    }
  }

  /** Writers holding `shard` now (labels), for errors and SHOW output. */
  holdersOf(shard: number): string[] {
    return [...(this.entries[shard]?.writers.keys() ?? [])];
  }
}

/** Distinct shards in ascending order, within range. */
function sortedShards(shards: readonly number[], count: number): number[] {
  return [...new Set(shards)].filter((s) => s >= 0 && s < count).sort((a, b) => a - b);
}

/** The fences of every sharded database (proxy-wide), created on first use. */
export class VisibilityFences {
  private readonly byDatabase = new Map<string, VisibilityFence>();
  /** Unfinished at_decision branches over every database: the one counter a request reads when none is pending. */
  readonly phaseTwoCount: PhaseTwoCount = { pending: 0 };

  constructor(private readonly clock: FenceClock = systemClock) {}

  /**
   * The fence of `database`, covering at least `shardCount` shards. One fence per database for the proxy's life: a
   * shard count that changed (a reload keeps the running shards — lifecycle/reload-plan.ts — so this is a guard) grows
   * it instead of replacing it, since a new fence would not know the sections and phase-2 branches open on the old one
   * and its readers would see a cross-shard commit on some shards only.
   */
  of(database: string, shardCount: number): VisibilityFence {
    let fence = this.byDatabase.get(database);
    if (fence === undefined) {
      fence = new VisibilityFence(shardCount, this.clock, this.phaseTwoCount);
      this.byDatabase.set(database, fence);
    } else if (fence.entries.length < shardCount) {
      fence.grow(shardCount);
    }
    return fence;
  }

  /** The counters of the fence of `database`, shard `shard` (null: no fence for it yet). */
  countersOf(database: string, shard: number): FenceCounters | null {
    return this.byDatabase.get(database)?.counters[shard] ?? null;
  }
}

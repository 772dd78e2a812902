// Read-your-writes for two_phase_commit_reply = "at_decision" (issue 15): which shards of one sharded database have a
// branch whose transaction was answered COMMIT at its decision and whose COMMIT PREPARED is not confirmed yet, and the
// requests through this proxy waiting for those shards to be clear. Unlike the fence's readers (2+ shards, only while
// their snapshots are taken), every request to such a shard waits: single-shard reads and statements in transaction
// blocks too. Pure: no sockets, no logging; timers are injected (the fence's FenceClock).
//
// The hot path reads one counter (PhaseTwoCount.pending, proxy-wide): zero means no shard of any database is pending,
// and nothing else is looked at.

/** Timers, injected (the fence's FenceClock fits). */
export interface GateTimers {
  /** Run `fn` after `ms`; the returned function cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

/** Branches answered at their decision and not yet committed, over every database of the proxy. */
export interface PhaseTwoCount {
  pending: number;
}

/** What a waiting request was still blocked by at its bound. */
export interface PhaseTwoBlocker {
  readonly shard: number;
  /** Transactions whose COMMIT PREPARED on `shard` is not finished. */
  readonly txids: readonly string[];
}

interface Waiter {
  /** The branches it waits for, per shard: those unfinished when it started (later commits never hold it up). */
  readonly remaining: Map<number, Set<string>>;
  readonly onClear: () => void;
  cancelTimer: (() => void) | null;
}

/** One sharded database's unfinished phase-2 branches, by shard. */
export class PhaseTwoGate {
  /** Per shard: the transactions with an unfinished branch there. */
  private readonly byShard: Set<string>[];
  private readonly waiters = new Set<Waiter>();

  constructor(
    shardCount: number,
    private readonly clock: GateTimers,
    private readonly count: PhaseTwoCount,
  ) {
    this.byShard = Array.from({ length: shardCount }, () => new Set<string>());
  }

  /** Cover `shardCount` shards (the fence grew): the branches unfinished now stay. */
  grow(shardCount: number): void {
    while (this.byShard.length < shardCount) this.byShard.push(new Set<string>());
  }

  /** `txid` was answered at its decision: its branches on `shards` are unfinished until close(). */
  open(txid: string, shards: readonly number[]): void {
    for (const shard of shards) {
      const set = this.byShard[shard];
      if (set === undefined || set.has(txid)) continue;
      set.add(txid);
      this.count.pending++;
    }
  }

  /** `txid`'s branch on `shard` is committed (or no longer this proxy's to finish). */
  close(txid: string, shard: number): void {
    const set = this.byShard[shard];
    if (set === undefined || !set.delete(txid)) return;
    this.count.pending--;
    for (const waiter of this.waiters) {
      const txids = waiter.remaining.get(shard);
      if (txids === undefined || !txids.delete(txid) || txids.size > 0) continue;
      waiter.remaining.delete(shard);
      if (waiter.remaining.size > 0) continue;
      this.waiters.delete(waiter);
      waiter.cancelTimer?.();
      waiter.onClear();
    }
  }

  /** Every branch of `txid` (the transaction finished, or was left to recovery). */
  closeAll(txid: string): void {
    for (let shard = 0; shard < this.byShard.length; shard++) this.close(txid, shard);
  }

  /** The first of `shards` with an unfinished branch, or -1. */
  firstPending(shards: readonly number[]): number {
    for (const shard of shards) if ((this.byShard[shard]?.size ?? 0) > 0) return shard;
    return -1;
  }

  /** Transactions unfinished on `shard`. */
  pendingOn(shard: number): string[] {
    return [...(this.byShard[shard] ?? [])];
  }

  /**
   * `onClear` once every branch unfinished on `shards` now is committed (synchronously if there is none) — branches
   * of transactions answered later do not hold it up, so a steady stream of commits cannot starve it; past
   * `timeoutMs` (> 0) `onTimeout` with what still blocks instead. The returned function withdraws the wait.
   */
  wait(
    shards: readonly number[],
    timeoutMs: number,
    onClear: () => void,
    onTimeout: (blocker: PhaseTwoBlocker) => void,
  ): () => void {
    if (this.firstPending(shards) < 0) {
      onClear();
      return () => {};
    }
    const remaining = new Map<number, Set<string>>();
    for (const shard of shards) {
      const set = this.byShard[shard];
      if (set !== undefined && set.size > 0) remaining.set(shard, new Set(set));
    }
    const waiter: Waiter = { remaining, onClear, cancelTimer: null };
    this.waiters.add(waiter);
    if (timeoutMs > 0) {
      waiter.cancelTimer = this.clock.setTimer(timeoutMs, () => {
        waiter.cancelTimer = null;
        if (!this.waiters.delete(waiter)) return;
        const [shard, txids] = [...remaining][0];
        onTimeout({ shard, txids: [...txids] });
      });
    }
    return () => {
      waiter.cancelTimer?.();
      this.waiters.delete(waiter);
    };
  }
}

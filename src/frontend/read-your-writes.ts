// Read-your-writes for one client session (beyond PgDog): after a transaction that may have written on a shard ends,
// the shard's primary is asked for its WAL position (backend/commit-lsn.ts) before its server goes back to the pool;
// until the answer, the session's reads of that shard go to the primary, then only to replicas the replay-LSN
// monitor saw replay at least that far (or the primary), and once every replica has, to any of them again. A client
// may also bring a position from another connection (`SET pgdog.min_lsn`, read-intent.ts): it holds the same way.
import { fetchCommitLsn } from '../backend/commit-lsn.js';
import { hasReplayed, type ReplicaSet } from '../backend/replica-set.js';
import type { ServerConnection } from '../backend/server-connection.js';

/** What a read of a shard needs: any server (null), the primary, or a replica that replayed this far. */
export type ReplayNeed = null | 'primary' | bigint;

interface Written {
  /** Position asks not answered yet. */
  pending: number;
  /** The highest position the session must see. */
  lsn: bigint | null;
  /** An ask failed at this time: the primary's position at the monitor's next check stands in for it. */
  unknownSinceMs: number | null;
}

/** The map of a session that wrote nothing yet: shared, never written (an idle client holds no map of its own). */
const NONE_WRITTEN: ReadonlyMap<number, Written> = new Map();

export class ReadYourWrites {
  private byShard = NONE_WRITTEN as Map<number, Written>;

  private entry(shard: number): Written {
    let e = this.byShard.get(shard);
    if (e === undefined) {
      e = { pending: 0, lsn: null, unknownSinceMs: null };
      if (this.byShard === NONE_WRITTEN) this.byShard = new Map();
      this.byShard.set(shard, e);
    }
    return e;
  }

  /**
   * A transaction that may have written on `shard` ended on `server`, a primary's: ask its WAL position, then give the
   * server back (`release`).
   */
  afterWrite(shard: number, server: ServerConnection, release: () => void): void {
    const e = this.entry(shard);
    e.pending++;
    void fetchCommitLsn(server).then((lsn) => {
      release();
      e.pending--;
      if (lsn === null) e.unknownSinceMs = Date.now();
      else this.require(shard, lsn);
    });
  }

  /** The session must see `lsn` on `shard` (its own write, or a position brought from another connection). */
  require(shard: number, lsn: bigint): void {
    const e = this.entry(shard);
    if (e.lsn === null || lsn > e.lsn) e.lsn = lsn;
  }

  /** What a read of `shard` (served by `set`) needs now; an entry every replica has replayed is forgotten. */
  needs(shard: number, set: ReplicaSet): ReplayNeed {
    if (this.byShard.size === 0) return null;
    const e = this.byShard.get(shard);
    if (e === undefined) return null;
    if (!set.tracksLsn) {
      this.byShard.delete(shard); // no monitor (lsn_check_delay not set): no replay positions to wait for
      return null;
    }
    if (e.pending > 0) return 'primary';
    if (e.unknownSinceMs !== null) {
      const p = set.primary;
      if (p.lsnCheckedAtMs <= e.unknownSinceMs || p.lsn?.lsn == null) return 'primary';
      this.require(shard, p.lsn.lsn);
      e.unknownSinceMs = null;
    }
    const lsn = e.lsn;
    if (lsn === null || set.replicas.every((m) => hasReplayed(m, lsn))) {
      this.byShard.delete(shard);
      return null;
    }
    return lsn;
  }
}

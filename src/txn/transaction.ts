// One distributed transaction as the transaction manager sees it from COMMIT on: its branches (one per shard, reader
// or writer, each with its GID) and the state machine active → preparing → committing → done, or → aborting → aborted.
// Pure data + transition checks; the coordinator and the manager drive it.

import type { FenceHold } from './visibility-fence.js';

export type TxState = 'active' | 'preparing' | 'committing' | 'done' | 'aborting' | 'aborted';
export type BranchRole = 'reader' | 'writer';
export type BranchState = 'open' | 'prepared' | 'committed' | 'rolled_back' | 'failed';

const NEXT: Readonly<Record<TxState, readonly TxState[]>> = {
  active: ['preparing', 'done', 'aborted'],
  preparing: ['committing', 'aborting'],
  committing: ['done'],
  aborting: ['aborted'],
  done: [],
  aborted: [],
};

export interface Branch {
  readonly shard: number;
  readonly role: BranchRole;
  /** The PREPARE TRANSACTION id (writers of a two-phase commit); null for readers. */
  readonly gid: string | null;
  state: BranchState;
}

export class DistributedTransaction {
  readonly txid: string;
  readonly database: string;
  readonly user: string;
  readonly startedAt = Date.now();
  state: TxState = 'active';
  stateSince = this.startedAt;
  /** Phase-2 (or abort) attempts made in the background after the first one failed. */
  retries = 0;
  lastError: string | null = null;
  /** The decision log failed while writing this one's COMMIT: left prepared for the next start's recovery. */
  isHeldInDoubt = false;
  readonly branches: readonly Branch[];
  /** Its hold on the visibility fence from just before the first COMMIT PREPARED until every writer committed. */
  visibility: FenceHold | null = null;

  constructor(txid: string, database: string, user: string, branches: readonly Branch[]) {
    this.txid = txid;
    this.database = database;
    this.user = user;
    this.branches = branches;
  }

  /** Move to `next`; throws on a transition the protocol does not allow (a bug, never a runtime condition). */
  to(next: TxState): void {
    if (!NEXT[this.state].includes(next)) {
      throw new Error(`transaction ${this.txid}: illegal state change ${this.state} → ${next}`);
    }
    this.state = next;
    this.stateSince = Date.now();
  }

  get writers(): Branch[] {
    return this.branches.filter((b) => b.role === 'writer');
  }

  get readers(): Branch[] {
    return this.branches.filter((b) => b.role === 'reader');
  }

  get isFinished(): boolean {
    return this.state === 'done' || this.state === 'aborted';
  }

  /** Writers whose branch still waits for COMMIT PREPARED (after the decision) or ROLLBACK PREPARED (after abort). */
  get unfinishedWriters(): Branch[] {
    return this.writers.filter((b) => b.state === 'prepared' || b.state === 'open');
  }
}

// One distributed transaction as the transaction manager sees it from COMMIT on: its branches (one per shard, reader
// or writer, each with its GID) and the state machine active → preparing → committing → done, or → aborting → aborted.
// Each branch has its own transition table (BRANCH_NEXT). Pure data + transition checks: the coordinator and the
// manager drive it, and every state change goes through `to` / `moveBranch`, which refuse impossible moves.

import type { FenceHold } from './visibility-fence.js';

export type TxState = 'active' | 'preparing' | 'committing' | 'done' | 'aborting' | 'aborted';
/**
 * decision: the decision shard's branch when it is not prepared (it carries the decision row and its COMMIT decides).
 * With atomic_visibility the decision shard's branch is a prepared 'writer' like the others and the decision is a
 * separate autocommit insert (decision-commit-prepared.ts); DistributedTransaction.decisionShard names the shard.
 */
export type BranchRole = 'reader' | 'writer' | 'decision';
export type BranchState = 'open' | 'prepared' | 'committed' | 'rolled_back' | 'failed';

const NEXT: Readonly<Record<TxState, readonly TxState[]>> = {
  active: ['preparing', 'done', 'aborted'],
  preparing: ['committing', 'aborting'],
  committing: ['done'],
  aborting: ['aborted'],
  done: [],
  aborted: [],
};

/**
 * A writer's branch: open → prepared (PREPARE TRANSACTION succeeded) → committed / rolled_back (COMMIT / ROLLBACK
 * PREPARED, or the GID found gone); open → failed (PREPARE failed: PostgreSQL rolled the branch back itself); open →
 * rolled_back (a PREPARE whose outcome was lost, made sure of with ROLLBACK PREPARED). Readers stay open: their plain
 * COMMIT cannot change the outcome.
 */
const BRANCH_NEXT: Readonly<Record<BranchState, readonly BranchState[]>> = {
  open: ['prepared', 'failed', 'rolled_back'],
  prepared: ['committed', 'rolled_back'],
  committed: [],
  rolled_back: [],
  failed: [],
};

/** The decision branch: open → committed (its plain COMMIT succeeded: the decision) or rolled_back. */
const DECISION_NEXT: Readonly<Record<BranchState, readonly BranchState[]>> = {
  open: ['committed', 'rolled_back'],
  prepared: [],
  committed: [],
  rolled_back: [],
  failed: [],
};

export interface Branch {
  readonly shard: number;
  readonly role: BranchRole;
  /** The PREPARE TRANSACTION id (writers of a two-phase commit); null for readers. */
  readonly gid: string | null;
  /** Changed only by DistributedTransaction.moveBranch. */
  readonly state: BranchState;
}

/** A branch as the transaction holds it: the one place its state is written. */
interface MutableBranch extends Branch {
  state: BranchState;
}

export class DistributedTransaction {
  readonly txid: string;
  readonly database: string;
  readonly user: string;
  readonly startedAt = Date.now();
  private current: TxState;
  stateSince = this.startedAt;
  /** Phase-2 (or abort) attempts made in the background after the first one failed. */
  retries = 0;
  lastError: string | null = null;
  /** The decision log failed while writing this one's COMMIT: left prepared for the next start's recovery. */
  isHeldInDoubt = false;
  private readonly held: readonly MutableBranch[];
  /** Its hold on the visibility fence from just before the first COMMIT PREPARED until every writer committed. */
  visibility: FenceHold | null = null;
  /** The shard holding its decision row (stateless two-phase commit, either layout); null for a legacy one. */
  readonly decisionShard: number | null;

  /**
   * `state`: where the transaction starts — 'active' for a new one; 'committing' for one recovery found decided (its
   * branches 'prepared'). `decisionShard`: where its decision row lives; defaults to its 'decision' branch's shard.
   */
  constructor(
    txid: string,
    database: string,
    user: string,
    branches: readonly Branch[],
    state: 'active' | 'committing' = 'active',
    decisionShard: number | null = null,
  ) {
    this.txid = txid;
    this.decisionShard = decisionShard ?? branches.find((b) => b.role === 'decision')?.shard ?? null;
    this.database = database;
    this.user = user;
    this.held = branches.map((b) => ({ ...b }));
    this.current = state;
  }

  get state(): TxState {
    return this.current;
  }

  get branches(): readonly Branch[] {
    return this.held;
  }

  /** Move to `next`; throws on a transition the protocol does not allow (a bug, never a runtime condition). */
  to(next: TxState): void {
    if (!NEXT[this.current].includes(next)) {
      throw new Error(`transaction ${this.txid}: illegal state change ${this.current} → ${next}`);
    }
    this.current = next;
    this.stateSince = Date.now();
  }

  /** The branch on `shard`; throws if the transaction has none there (a bug). */
  branchOn(shard: number): Branch {
    const branch = this.held.find((b) => b.shard === shard);
    if (branch === undefined) throw new Error(`transaction ${this.txid} has no branch on shard ${shard}`);
    return branch;
  }

  /**
   * Move a writer's branch to `next` (BRANCH_NEXT); throws on a move the protocol does not allow — a reader's branch
   * never moves, a finished one never changes again, a committed branch is never rolled back.
   */
  moveBranch(branch: Branch, next: BranchState): void {
    const held = this.held.find((b) => b === branch);
    if (held === undefined)
      throw new Error(`transaction ${this.txid}: not its branch (shard ${branch.shard})`);
    const table = held.role === 'decision' ? DECISION_NEXT : BRANCH_NEXT;
    if (held.role === 'reader' || !table[held.state].includes(next)) {
      throw new Error(
        `transaction ${this.txid}: illegal ${held.role} branch change on shard ${held.shard}: ${held.state} → ${next}`,
      );
    }
    held.state = next;
  }

  get writers(): Branch[] {
    return this.branches.filter((b) => b.role === 'writer');
  }

  /** The decision shard's unprepared branch (stateless two-phase commit, decision by COMMIT); else null. */
  get decision(): Branch | null {
    return this.branches.find((b) => b.role === 'decision') ?? null;
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

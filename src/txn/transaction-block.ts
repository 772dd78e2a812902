// A sharded session's transaction block, as the proxy runs it, and the one owner of its participants: which shards it
// reached (`joined`), which of them may have written (`writers`), what a shard joining late runs first (the replay),
// and whether the request in flight ends it (`ending`). Every request records its shards here (`participate`) before
// it is sent; the commit reads them from here only (`participants`). The block's phase (none → open → ending → none,
// or open again after AND CHAIN) changes in `move` only, which refuses impossible moves. Also where each
// transaction-control statement or setting goes (`place`: BEGIN answered by the proxy and joined lazily by shards;
// COMMIT / ROLLBACK to the shards reached; SAVEPOINT / SET inside the block to those shards, replayed on shards
// joining later) and the session's transaction status after each request (`refresh`). Pure: what it needs of the
// session's servers and settings comes through BlockHost; the dispatch carries out what it decides.
import { Backend, TxStatus } from '../protocol/codes.js';
import { commandComplete, errorResponse } from '../protocol/messages.js';
import { SqlState } from '../errors/sqlstate.js';
import type { StatementPlan } from '../router/plan.js';
import { BlockReplay } from './block-replay.js';

const BEGIN_TAG = commandComplete('BEGIN');
const COMMIT_TAG = commandComplete('COMMIT');
const ROLLBACK_TAG = commandComplete('ROLLBACK');
const ALREADY_IN_TRANSACTION = errorResponse(
  {
    severity: 'WARNING',
    code: SqlState.ActiveSqlTransaction,
    message: 'there is already a transaction in progress',
  },
  Backend.NoticeResponse,
);

/**
 * `none`: no block (statements outside a transaction); `open`: a block is open (the client's BEGIN, one a shard began
 * on its own, or one of the proxy's own around a script); `ending`: the request in flight ends it (COMMIT / ROLLBACK,
 * maybe AND CHAIN).
 */
export type BlockPhase = 'none' | 'open' | 'ending';

const NEXT: Readonly<Record<BlockPhase, readonly BlockPhase[]>> = {
  none: ['open'],
  // → none: the block ended without a COMMIT / ROLLBACK of the client's (its shards ended it, or no shard took part).
  open: ['ending', 'none'],
  // → open: AND CHAIN (the next block), or the end did not happen (the shards are still in the transaction).
  ending: ['none', 'open'],
};

/** Whether the block's phase may go from `from` to `to`. */
export function canMovePhase(from: BlockPhase, to: BlockPhase): boolean {
  return NEXT[from].includes(to);
}

/** How a block ends: for good, or AND CHAIN (a new block with the same characteristics) on the same shards or none. */
export type BlockEnd = 'none' | 'sameShards' | 'lazy';

/** A reply the proxy gives itself (the frontend's LocalReply has this shape). */
export interface BlockReply {
  readonly tag: Buffer;
  readonly notice?: Buffer | null;
  readonly status: number;
}

/** What to do with a transaction-control statement or setting. */
export type Placement =
  /** Run it on these shards (one or several; 'all' — a setting outside a block — as routed). */
  | { readonly kind: 'shards'; readonly shards: readonly number[] | 'all' }
  /** Answer it without a shard. */
  | { readonly kind: 'answer'; readonly reply: BlockReply }
  /**
   * COMMIT of a failed transaction on several shards: `sql` (ROLLBACK, or ROLLBACK AND CHAIN for COMMIT AND CHAIN) on
   * each, answered `ROLLBACK` — a shard still healthy must not commit, as PostgreSQL turns such a COMMIT into ROLLBACK.
   */
  | {
      readonly kind: 'rollback';
      readonly shards: readonly number[];
      readonly sql: string;
      readonly reply: BlockReply;
    };

/** Who takes part in the transaction being committed: every shard it reached, and the ones that may have written. */
export interface Participants {
  /** In shard order. */
  readonly shards: readonly number[];
  readonly writers: ReadonlySet<number>;
  /** Why PostgreSQL will refuse PREPARE TRANSACTION for it (temporary objects, NOTIFY, …), or null. */
  readonly preventsPrepare: string | null;
}

/** What a request may do to the transaction on the shards it runs on (the router's findings). */
export interface RequestEffects {
  /** It may change data there (DML, DDL, COPY FROM, a call the proxy cannot see into). */
  readonly mayWrite: boolean;
  /** PostgreSQL will refuse PREPARE TRANSACTION after it (temporary objects, NOTIFY, …): why, or null. */
  readonly preventsPrepare: string | null;
}

/** A statement of the proxy's own (a catalog lookup): no effect on the transaction. */
export const NO_EFFECTS: RequestEffects = { mayWrite: false, preventsPrepare: null };

/** What the block needs of the session: its servers' transaction status, and its SETs run inside the block. */
export interface BlockHost {
  /** How many shards the database has. */
  readonly shardCount: number;
  /** Transaction status (TxStatus) of the server the session holds on `shard`; null when it holds none there. */
  statusOn(shard: number): number | null;
  /** The status of the session's servers combined (failed over in-transaction over idle). */
  combinedStatus(): number;
  /** A request inside the block ended: its SET / RESETs are kept until the block ends (`isKept`), or dropped. */
  keepRequestSettings(isKept: boolean): void;
  /** The block ended: the SETs it kept hold for the session and `shards` if it committed. Portals end with it. */
  blockEnded(isCommitted: boolean, shards: ReadonlySet<number>): void;
}

export class TransactionBlock {
  private current: BlockPhase = 'none';
  /** What a shard joining the open block runs first. */
  private readonly replay = new BlockReplay();
  /** Shards the open block has reached (their BEGIN sent), in no order. */
  private readonly joined = new Set<number>();
  /**
   * Shards a request that may change data ran on since the session was last idle outside a transaction (a shard
   * can write before the proxy sees its block open: a multi-statement Query that begins it, routed whole).
   */
  private readonly writers = new Set<number>();
  /** Why the transaction cannot be prepared (two-phase commit impossible), from the first request that made it so. */
  private preventsPrepare: string | null = null;
  /**
   * The open block's snapshot was taken on every shard together (REPEATABLE READ / SERIALIZABLE under the visibility
   * fence: engine/block-cut.ts), or it does not need to be.
   */
  private isCutTaken = false;
  /**
   * The proxy rolled the open block back on every shard it reached (a distributed deadlock's victim): the client's
   * block is failed with no shard in it until its ROLLBACK / COMMIT, which the proxy answers.
   */
  private isRolledBack = false;
  /** Set while the phase is 'ending': whether the end commits, and whether it chains the next block. */
  private ending: { isCommit: boolean; isChained: boolean } | null = null;
  private readonly host: BlockHost;

  constructor(host: BlockHost) {
    this.host = host;
  }

  get phase(): BlockPhase {
    return this.current;
  }

  /** The one place the phase changes; throws on a move the block does not allow (a bug, never a runtime condition). */
  private move(next: BlockPhase): void {
    if (!canMovePhase(this.current, next))
      throw new Error(`transaction block: illegal phase change ${this.current} → ${next}`);
    this.current = next;
  }

  /** The shards the block reached, in shard order. */
  joinedShards(): number[] {
    return [...this.joined].sort((a, b) => a - b);
  }

  /** A transaction block is open (the client's, or one the proxy runs around a script or a multi-shard write). */
  get isOpen(): boolean {
    return this.current !== 'none';
  }

  /** The open block's characteristics: its BEGIN and SET TRANSACTIONs, in order (none when no block is open). */
  characteristics(): string[] {
    return this.isOpen ? this.replay.characteristics() : [];
  }

  /**
   * Whether the next statement must first take the block's snapshot on every shard together: the block is open, runs
   * in one snapshot per transaction (`isSnapshotPerBlock`, from its characteristics) and has not taken it yet.
   */
  needsCut(isSnapshotPerBlock: (characteristics: readonly string[]) => boolean): boolean {
    return this.current === 'open' && !this.isCutTaken && isSnapshotPerBlock(this.replay.characteristics());
  }

  /** The block's snapshot is taken on every shard (`needsCut` is false until the block ends). */
  markCutTaken(): void {
    this.isCutTaken = true;
  }

  /** Every shard of the database, in order (where the block's cut is taken). */
  allShards(): number[] {
    return Array.from({ length: this.host.shardCount }, (_, i) => i);
  }

  /** How many shards the block reached. */
  get reachedCount(): number {
    return this.joined.size;
  }

  /** Whether a request on `shards` may run: a shard the block has not reached can still join it (the replay is bounded). */
  canReach(shards: readonly number[]): boolean {
    return !this.isOpen || this.replay.canJoin || shards.every((s) => this.joined.has(s));
  }

  /**
   * The one place participants are recorded: a request is about to be sent to `shards` (their servers held). Inside a
   * block, a shard it has not reached joins it — `join` sends it the block's opening statements first. A request that
   * may change data there (DML, DDL, COPY FROM, a call the proxy cannot see into) makes those shards writers at
   * COMMIT, so they prepare (2PC) instead of being committed first as readers.
   */
  participate(
    shards: readonly number[],
    effects: RequestEffects,
    join: (shard: number, sql: string) => void,
  ): void {
    if (this.isOpen) {
      for (const shard of shards) {
        if (this.joined.has(shard)) continue;
        join(shard, this.replay.joinSql());
        this.joined.add(shard);
      }
    }
    if (effects.mayWrite) for (const shard of shards) this.writers.add(shard);
    this.preventsPrepare ??= effects.preventsPrepare;
  }

  /** The participants of the transaction being committed, read by the coordinator. */
  participants(): Participants {
    const shards = this.joinedShards();
    return {
      shards,
      writers: new Set(shards.filter((s) => this.writers.has(s))),
      preventsPrepare: this.preventsPrepare,
    };
  }

  /**
   * The proxy rolled the block back on every shard it reached (their servers may be gone back to their pools): it
   * stays open and failed, with no shard in it, until the client ends it; nothing of it is committed anywhere.
   */
  rolledBackOnShards(): void {
    if (!this.isOpen) return;
    this.isRolledBack = true;
    this.joined.clear();
    this.replay.dropPending();
    this.forgetParticipants();
  }

  /**
   * Whether a session-level statement may run in a failed block: on shards still in it, each says (PostgreSQL's own
   * 25P02 or not); in a block the proxy rolled back everywhere only its end may (ROLLBACK, or COMMIT answered
   * ROLLBACK) — not ROLLBACK TO SAVEPOINT, whose savepoint is gone with the shards' transactions.
   */
  canRunWhileFailed(statement: StatementPlan | null): boolean {
    if (!this.isRolledBack) return true;
    return statement?.kind === 'commit' || statement?.kind === 'rollback';
  }

  /** The statements of a script run as one implicit transaction: a block of the proxy's own, joined lazily too. */
  openImplicit(): void {
    this.open('BEGIN');
  }

  /**
   * A block the proxy did not see open (a shard began it inside a multi-statement Query routed to it whole): `shards`
   * are in it; shards that join later run a plain BEGIN.
   */
  adopt(shards: Iterable<number>): void {
    if (!this.isOpen) this.open('BEGIN');
    for (const shard of shards) this.joined.add(shard);
  }

  /**
   * The request in flight ends the block, committed or not (the proxy's own COMMIT / ROLLBACK of it); `isChained`: a
   * COMMIT AND CHAIN that succeeded — the next block starts with the same characteristics, joined lazily again.
   */
  markEnding(isCommit: boolean, isChained = false): void {
    if (!this.isOpen) return;
    if (this.current === 'open') this.move('ending');
    this.ending = { isCommit, isChained };
  }

  /**
   * Where `statement` (transaction control or a setting, the request's one statement) runs, given the status the
   * client was last told. `pickShard`: a shard for a statement that needs one and the block has none yet.
   */
  place(statement: StatementPlan, status: number, pickShard: () => number): Placement {
    const joined = this.joinedShards();
    const isInBlock = status !== TxStatus.Idle;
    const onJoined = (): Placement => ({
      kind: 'shards',
      shards: joined.length > 0 ? joined : [pickShard()],
    });
    switch (statement.kind) {
      case 'begin':
        if (!isInBlock) {
          this.open(statement.text);
          return { kind: 'answer', reply: { tag: BEGIN_TAG, status: TxStatus.InTransaction } };
        }
        if (joined.length > 0) return { kind: 'shards', shards: joined };
        return { kind: 'answer', reply: { tag: BEGIN_TAG, notice: ALREADY_IN_TRANSACTION, status } };
      case 'commit':
      case 'rollback': {
        // Outside a block any one shard gives PostgreSQL's answer (a warning, or AND CHAIN's error).
        if (!isInBlock) return { kind: 'shards', shards: [pickShard()] };
        const isChained = statement.transaction?.chain === true;
        const isRollback = statement.kind === 'rollback' || status === TxStatus.Failed;
        this.markEnding(!isRollback, isChained);
        const tag = isRollback ? ROLLBACK_TAG : COMMIT_TAG;
        if (joined.length === 0) {
          this.finish(!isRollback, isChained ? 'lazy' : 'none');
          return {
            kind: 'answer',
            reply: { tag, status: isChained ? TxStatus.InTransaction : TxStatus.Idle },
          };
        }
        // COMMIT of a failed transaction is its ROLLBACK, on every shard (a shard still healthy must not commit);
        // AND CHAIN then starts the next block on each, as PostgreSQL does.
        if (status === TxStatus.Failed && statement.kind === 'commit' && joined.length >= 2) {
          return {
            kind: 'rollback',
            shards: joined,
            sql: isChained ? 'ROLLBACK AND CHAIN' : 'ROLLBACK',
            reply: { tag: ROLLBACK_TAG, status: isChained ? TxStatus.InTransaction : TxStatus.Idle },
          };
        }
        return { kind: 'shards', shards: joined };
      }
      case 'savepoint': {
        if (!isInBlock) return { kind: 'shards', shards: [pickShard()] };
        const t = statement.transaction;
        if (t?.savepointAction != null && t.savepoint !== null) {
          this.replay.expect({ kind: 'savepoint', action: t.savepointAction, name: t.savepoint });
        }
        return onJoined();
      }
      default:
        // SET / RESET / DISCARD: outside a block on every shard (kept for the session by the dispatch).
        if (!isInBlock) return { kind: 'shards', shards: 'all' };
        if (statement.kind !== 'discard') {
          // SET TRANSACTION (isolation level, access mode) is a characteristic AND CHAIN carries over.
          const isCharacteristic = statement.setting?.action === 'multi';
          this.replay.expect({ kind: 'setting', text: statement.text, isCharacteristic });
        }
        return onJoined();
    }
  }

  /**
   * The session's transaction status after a request, from its shards and the block (open with no shard reached yet:
   * in a transaction). Keeps the block in step: the request's savepoint or setting is kept for joining shards (dropped
   * when it failed); a transaction a shard began on its own is adopted; the block is over once none of its shards is
   * in a transaction any more.
   */
  refresh(sawError: boolean): number {
    const host = this.host;
    let status = host.combinedStatus();
    // The common case after a statement outside any transaction: nothing to keep, adopt or end.
    if (status === TxStatus.Idle && !this.isOpen) {
      if (this.writers.size > 0 || this.preventsPrepare !== null) this.forgetParticipants();
      return status;
    }
    const hasFailed = sawError || status === TxStatus.Failed;
    if (this.isOpen) {
      if (hasFailed) this.replay.dropPending();
      else this.replay.confirm();
      host.keepRequestSettings(!hasFailed);
    }
    let isReached = false;
    for (let shard = 0; shard < host.shardCount; shard++) {
      const shardStatus = host.statusOn(shard);
      if (shardStatus === null || shardStatus === TxStatus.Idle) continue;
      isReached = true;
      if (!this.joined.has(shard)) this.adopt([shard]);
    }
    const ending = this.ending;
    // Chained by the shards themselves (they are in the next transaction already), or ended on them by the proxy.
    if (ending !== null && ending.isChained && isReached && !hasFailed)
      this.finish(ending.isCommit, 'sameShards');
    else if (this.isOpen && !isReached && this.joined.size > 0)
      this.finish(ending?.isCommit === true, ending?.isChained === true ? 'lazy' : 'none');
    else if (this.current === 'ending') {
      // The end did not happen: the shards are still in the transaction.
      this.ending = null;
      this.move('open');
    }
    if (this.isOpen && status === TxStatus.Idle)
      status = this.isRolledBack ? TxStatus.Failed : TxStatus.InTransaction;
    if (status === TxStatus.Idle) this.forgetParticipants();
    return status;
  }

  /**
   * The block ended: its SETs hold for the session (and the shards that ran them) if it committed. AND CHAIN: a new
   * block starts with the same characteristics — on the same shards when they chained it themselves ('sameShards'),
   * on none yet when the proxy ended the transaction on them ('lazy': each joins again when first needed).
   */
  finish(isCommitted: boolean, end: BlockEnd): void {
    this.host.blockEnded(isCommitted, this.joined);
    this.ending = null;
    this.isCutTaken = false; // a chained block takes its own snapshot
    this.isRolledBack = false;
    if (end === 'none') {
      this.move('none');
      this.replay.clear();
      this.joined.clear();
    } else {
      if (this.current === 'ending') this.move('open');
      this.replay.chain();
      if (end === 'lazy') this.joined.clear();
    }
    this.forgetParticipants(); // a chained block starts with no writes
  }

  /** BEGIN / START TRANSACTION outside a block (`text` as the client wrote it, options included), or an implicit one. */
  private open(text: string): void {
    this.move('open');
    this.isRolledBack = false;
    this.replay.start(text);
    this.joined.clear();
    this.isCutTaken = false;
  }

  private forgetParticipants(): void {
    this.writers.clear();
    this.preventsPrepare = null;
  }
}

// A sharded session's transaction block, as the proxy runs it, and the one owner of its participants: which shards it
// reached and which of them may have written (every request records them here, in `participate`, before it is sent;
// the commit reads them from here only). Also where each transaction-control statement or setting goes (BEGIN answered
// by the proxy and joined lazily by shards; COMMIT / ROLLBACK to the shards reached; SAVEPOINT / SET inside the block to
// those shards, replayed on shards joining later), the session's transaction status after each request, and what the
// block's end keeps (SETs that committed). The dispatch (sharded-dispatch.ts) carries it out.
import { Backend, TxStatus } from '../protocol/codes.js';
import { commandComplete, errorResponse } from '../protocol/messages.js';
import { SqlState } from '../errors/sqlstate.js';
import type { StatementPlan } from '../router/plan.js';
import type { LocalReply } from './local-replies.js';
import { isReadOnlyBlock } from './read-intent.js';
import type { SessionRouter } from './session-router.js';
import { applySettingChange, type SettingChange } from './session-settings.js';
import type { ShardServers } from './shard-servers.js';
import { TransactionScope, type BlockEnd } from './transaction-scope.js';

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

/** What to do with a transaction-control statement or setting. */
export type Placement =
  /** Run it on these shards (one or several; 'all' — a setting outside a block — as routed). */
  | { readonly kind: 'shards'; readonly shards: readonly number[] | 'all' }
  /** Answer it without a shard. */
  | { readonly kind: 'answer'; readonly reply: LocalReply }
  /**
   * COMMIT of a failed transaction on several shards: `sql` (ROLLBACK, or ROLLBACK AND CHAIN for COMMIT AND CHAIN) on
   * each, answered `ROLLBACK` — a shard still healthy must not commit, as PostgreSQL turns such a COMMIT into ROLLBACK.
   */
  | {
      readonly kind: 'rollback';
      readonly shards: readonly number[];
      readonly sql: string;
      readonly reply: LocalReply;
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

export class TransactionBlock {
  /** The shards reached and the statements a joining shard runs first. */
  readonly scope = new TransactionScope();
  /**
   * Shards a request that may change data ran on since the session was last idle outside a transaction (a shard
   * can write before the proxy sees its block open: a multi-statement Query that begins it, routed whole).
   */
  private readonly writers = new Set<number>();
  /** Why the transaction cannot be prepared (two-phase commit impossible), from the first request that made it so. */
  private preventsPrepare: string | null = null;
  /** SET / RESET run inside the block: they hold for the session once it commits. */
  private settings: SettingChange[] = [];
  /** The request in flight ends the block (COMMIT / ROLLBACK, maybe AND CHAIN), or null. */
  private ending: { isCommit: boolean; isChained: boolean } | null = null;
  private readonly servers: ShardServers;
  private readonly router: SessionRouter;
  /** Called when a block ends (the proxy's portals end with it). */
  private readonly onEnd: () => void;

  constructor(servers: ShardServers, router: SessionRouter, onEnd: () => void) {
    this.servers = servers;
    this.router = router;
    this.onEnd = onEnd;
  }

  /** The shards the block reached, in shard order. */
  joinedShards(): number[] {
    return [...this.scope.joined].sort((a, b) => a - b);
  }

  /** A transaction block is open (the client's, or one the proxy runs around a script or a multi-shard write). */
  get isOpen(): boolean {
    return this.scope.isOpen;
  }

  /** The open block is READ ONLY (not SERIALIZABLE): its shards may be replicas (read-intent.ts `isReadOnlyBlock`). */
  get isReadOnly(): boolean {
    return this.scope.isOpen && isReadOnlyBlock(this.scope.characteristics());
  }

  /** How many shards the block reached. */
  get reachedCount(): number {
    return this.scope.joined.size;
  }

  /** Whether a request on `shards` may run: a shard the block has not reached can still join it (the replay is bounded). */
  canReach(shards: readonly number[]): boolean {
    const scope = this.scope;
    return !scope.isOpen || scope.canJoin || shards.every((s) => scope.joined.has(s));
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
    const scope = this.scope;
    if (scope.isOpen) {
      for (const shard of shards) {
        if (scope.joined.has(shard)) continue;
        join(shard, scope.joinSql());
        scope.joined.add(shard);
      }
    }
    if (effects.mayWrite) for (const shard of shards) this.writers.add(shard);
    this.preventsPrepare ??= effects.preventsPrepare;
  }

  /** The participants of the transaction being committed, read by the coordinator. */
  participants(): Participants {
    const shards = this.joinedShards();
    // A READ ONLY block wrote nothing (PostgreSQL refuses), and its shards may be replicas, which cannot PREPARE.
    const isReadOnly = this.writers.size >= 2 && this.isReadOnly;
    return {
      shards,
      writers: new Set(isReadOnly ? [] : shards.filter((s) => this.writers.has(s))),
      preventsPrepare: this.preventsPrepare,
    };
  }

  /** The statements of a script run as one implicit transaction: a block of the proxy's own, joined lazily too. */
  openImplicit(): void {
    this.scope.open('BEGIN');
  }

  /**
   * The request in flight ends the block, committed or not (the proxy's own COMMIT / ROLLBACK of it); `isChained`: a
   * COMMIT AND CHAIN that succeeded — the next block starts with the same characteristics, joined lazily again.
   */
  markEnding(isCommit: boolean, isChained = false): void {
    if (this.scope.isOpen) this.ending = { isCommit, isChained };
  }

  /**
   * Where `statement` (transaction control or a setting, the request's one statement) runs, given the status the
   * client was last told. `pickShard`: a shard for a statement that needs one and the block has none yet.
   */
  place(statement: StatementPlan, status: number, pickShard: () => number): Placement {
    const scope = this.scope;
    const joined = this.joinedShards();
    const isInBlock = status !== TxStatus.Idle;
    const onJoined = (): Placement => ({
      kind: 'shards',
      shards: joined.length > 0 ? joined : [pickShard()],
    });
    switch (statement.kind) {
      case 'begin':
        if (!isInBlock) {
          scope.open(statement.text);
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
        this.ending = { isCommit: !isRollback, isChained };
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
          scope.expect({ kind: 'savepoint', action: t.savepointAction, name: t.savepoint });
        }
        return onJoined();
      }
      default:
        // SET / RESET / DISCARD: outside a block on every shard (kept for the session by the dispatch).
        if (!isInBlock) return { kind: 'shards', shards: 'all' };
        if (statement.kind !== 'discard') {
          // SET TRANSACTION (isolation level, access mode) is a characteristic AND CHAIN carries over.
          const isCharacteristic = statement.setting?.action === 'multi';
          scope.expect({ kind: 'setting', text: statement.text, isCharacteristic });
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
    const scope = this.scope;
    let status = this.servers.combinedStatus();
    // The common case after a statement outside any transaction: nothing to keep, adopt or end.
    if (status === TxStatus.Idle && !scope.isOpen) {
      this.ending = null;
      if (this.writers.size > 0 || this.preventsPrepare !== null) this.forgetParticipants();
      return status;
    }
    const hasFailed = sawError || status === TxStatus.Failed;
    if (scope.isOpen) {
      if (hasFailed) {
        scope.dropPending();
        this.router.dropPendingSettings();
      } else {
        scope.confirm();
        this.settings.push(...this.router.takePendingSettings());
      }
    }
    let isReached = false;
    const byShard = this.servers.byShard;
    for (let shard = 0; shard < byShard.length; shard++) {
      const server = byShard[shard];
      if (server === null || server.txStatus === TxStatus.Idle) continue;
      isReached = true;
      if (!scope.joined.has(shard)) scope.adopt([shard]);
    }
    const ending = this.ending;
    this.ending = null;
    // Chained by the shards themselves (they are in the next transaction already), or ended on them by the proxy.
    if (ending !== null && ending.isChained && isReached && !hasFailed)
      this.finish(ending.isCommit, 'sameShards');
    else if (scope.isOpen && !isReached && scope.joined.size > 0)
      this.finish(ending?.isCommit === true, ending?.isChained === true ? 'lazy' : 'none');
    if (scope.isOpen && status === TxStatus.Idle) status = TxStatus.InTransaction;
    if (status === TxStatus.Idle) this.forgetParticipants();
    return status;
  }

  /**
   * The block ended: its SETs hold for the session (and the shards that ran them) if it committed. AND CHAIN: a new
   * block starts with the same characteristics (TransactionScope.close).
   */
  finish(isCommitted: boolean, end: BlockEnd): void {
    const changes = this.settings;
    this.settings = [];
    if (isCommitted && changes.length > 0) {
      this.router.applySettings(changes);
      for (const shard of this.scope.joined) {
        const server = this.servers.byShard[shard];
        if (server != null) for (const c of changes) applySettingChange(server.settings, c);
      }
    }
    this.scope.close(end);
    this.forgetParticipants(); // a chained block starts with no writes
    this.onEnd();
  }

  private forgetParticipants(): void {
    this.writers.clear();
    this.preventsPrepare = null;
  }
}

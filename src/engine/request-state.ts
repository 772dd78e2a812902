// What a sharded session's request in flight is doing, as one value changed in one place (PgBouncer's client states,
// txn/transaction.ts's table): idle (no request in flight, or one sent without Sync that owes nothing), acquiring
// (waiting for server checkouts: shard-servers.ts), single (sent to one shard, which answers the client directly until
// its ReadyForQuery), own (statements of the proxy's own on held servers — ROLLBACK, a Sync, the block's cut — whose
// replies never reach the client), a lookup of the proxy's own before the request can be routed (a table's columns,
// catalog facts, sequence values: route-lookups.ts), a wait before it is sent (atomic visibility: visibility-waits.ts),
// a fan-out whose replies are merged, or a commit the proxy carries out across shards (commit-run.ts). `move` is the
// only place it changes and refuses impossible moves (one at a time, each ended — back to idle — before the next);
// busy / idle / waiting for a server / active are all read from it.
// Beside it, two slots for what spans several of those steps, each with its own table and its own mover: the proxy's
// transaction (none | script: script-run.ts, `moveTransaction`) and the request's run (none | copyIn | cursorRun |
// insertSource | insertStream: copy-in-run.ts, cursor-requests.ts, insert-run.ts, `moveRun`). Their lifetimes overlap
// rather than nest (docs/plans/engine.md), so they are slots, not members of the union; which work each slot member may
// be with is a third table, and which run a script may hold a fourth, checked on every move of any of the three.
import type { CopyInSplit } from './copy-in.js';
import type { Fanout } from './fanout.js';
import type { InsertSourceRun } from './insert-source.js';
import type { InsertStreamRun } from './insert-stream.js';
import type { CursorRun } from './proxy-portal.js';

export type RequestWork =
  | { readonly kind: 'idle' }
  | { readonly kind: 'acquiring' }
  | { readonly kind: 'single'; readonly shard: number }
  | { readonly kind: 'own' }
  | { readonly kind: 'lookup'; readonly what: string }
  | { readonly kind: 'waiting'; readonly what: string }
  | { readonly kind: 'fanout'; readonly fanout: Fanout }
  | { readonly kind: 'committing' };

export type RequestWorkKind = RequestWork['kind'];

const NEXT: Readonly<Record<RequestWorkKind, readonly RequestWorkKind[]>> = {
  idle: ['acquiring', 'single', 'own', 'lookup', 'waiting', 'fanout', 'committing'],
  acquiring: ['idle'],
  single: ['idle'],
  own: ['idle'],
  lookup: ['idle'],
  waiting: ['idle'],
  fanout: ['idle'],
  committing: ['idle'],
};

/** One bit per kind of work: the tables below are read as bit masks (two moves per request, on the hot path). */
const WORK_BIT: Readonly<Record<RequestWorkKind, number>> = {
  idle: 1,
  acquiring: 2,
  single: 4,
  own: 8,
  lookup: 16,
  waiting: 32,
  fanout: 64,
  committing: 128,
};

function workMask(kinds: readonly RequestWorkKind[]): number {
  let mask = 0;
  for (const k of kinds) mask |= WORK_BIT[k];
  return mask;
}

/** A table of allowed kinds per key, as one mask of WORK_BITs per key. */
function workMasks<K extends string>(
  table: Readonly<Record<K, readonly RequestWorkKind[]>>,
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of Object.keys(table) as K[]) out[key] = workMask(table[key]);
  return out;
}

const NEXT_MASK = workMasks(NEXT);

/** Whether the request's work may go from `from` to `to`. */
export function canMoveWork(from: RequestWorkKind, to: RequestWorkKind): boolean {
  return (NEXT_MASK[from] & WORK_BIT[to]) !== 0;
}

/** One script in flight (script-run.ts): statements run one request at a time, one ReadyForQuery at the end. */
export interface ScriptRun {
  /** Requests of the script not run yet (the first ones in the batch). */
  remaining: number;
  /** Runs in a transaction of the proxy's own (the client had none open): committed or rolled back at the end. */
  readonly isImplicit: boolean;
  /**
   * One statement the proxy wrapped in a transaction of its own (a write on several shards outside BEGIN): it uses
   * two-phase commit only with two_phase_commit_auto. A script of several statements is a transaction block in
   * PostgreSQL's terms: two-phase whenever two_phase_commit is on.
   */
  readonly isSingleWrite: boolean;
  /** Sent as a simple Query: the last statement's command tag waits for the commit, as PostgreSQL reports it. */
  readonly isQuery: boolean;
  hasFailed: boolean;
  /** The last statement's command tags, sent once the commit succeeded. */
  readonly heldTags: Buffer[];
}

/** The proxy's own transaction around several requests: none, or a script (script-run.ts). */
export type ProxyTransaction =
  { readonly kind: 'none' } | { readonly kind: 'script'; readonly script: ScriptRun };

export type ProxyTransactionKind = ProxyTransaction['kind'];

/**
 * The request's run that outlives one step: a COPY … FROM STDIN split across shards (kept after its fan-out to drop
 * the client's copy data until its end), a cursor's fan-out collected as a portal of the proxy's, an INSERT … SELECT's
 * query evaluated by the proxy, or the same streamed batch by batch.
 */
export type RequestRun =
  | { readonly kind: 'none' }
  | { readonly kind: 'copyIn'; readonly copy: CopyInSplit }
  | { readonly kind: 'cursorRun'; readonly run: CursorRun }
  | { readonly kind: 'insertSource'; readonly run: InsertSourceRun }
  | { readonly kind: 'insertStream'; readonly run: InsertStreamRun };

export type RequestRunKind = RequestRun['kind'];

const TRANSACTION_NEXT: Readonly<Record<ProxyTransactionKind, readonly ProxyTransactionKind[]>> = {
  none: ['script'],
  script: ['none'],
};

const RUN_NEXT: Readonly<Record<RequestRunKind, readonly RequestRunKind[]>> = {
  none: ['copyIn', 'cursorRun', 'insertSource'],
  copyIn: ['none'],
  cursorRun: ['none'],
  // A query evaluated whose rows need no merge is streamed instead (insert-run.ts streamIfPossible).
  insertSource: ['insertStream', 'none'],
  insertStream: ['none'],
};

/** Whether the proxy's transaction may go from `from` to `to`. */
export function canMoveTransaction(from: ProxyTransactionKind, to: ProxyTransactionKind): boolean {
  return TRANSACTION_NEXT[from].includes(to);
}

/** Whether the request's run may go from `from` to `to`. */
export function canMoveRun(from: RequestRunKind, to: RequestRunKind): boolean {
  return RUN_NEXT[from].includes(to);
}

const ANY_WORK: readonly RequestWorkKind[] = [
  'idle',
  'acquiring',
  'single',
  'own',
  'lookup',
  'waiting',
  'fanout',
  'committing',
];

/**
 * A run's statements go out through checkouts, lookups, waits and fan-outs (a statement of the proxy's own run is a
 * fan-out even on one shard: its replies are the proxy's), and a deadlock victim's ROLLBACK (own) may end it; never a
 * single-shard request answering the client directly, never a commit.
 */
const RUN_WORK: readonly RequestWorkKind[] = ['idle', 'acquiring', 'own', 'lookup', 'waiting', 'fanout'];

/** The work each member of the two slots may be with. */
const WORK_WITH_TRANSACTION: Readonly<Record<ProxyTransactionKind, readonly RequestWorkKind[]>> = {
  none: ANY_WORK,
  // Its statements are fan-outs (even on one shard: the ReadyForQuery is the script's), and it ends in a commit.
  script: ANY_WORK.filter((k) => k !== 'single'),
};

const WORK_WITH_RUN: Readonly<Record<RequestRunKind, readonly RequestWorkKind[]>> = {
  none: ANY_WORK,
  // Its fan-out; after it (an error before the client's CopyDone) idle, or the script's ROLLBACK, while the client's
  // remaining copy messages are dropped.
  copyIn: ['idle', 'fanout', 'own'],
  cursorRun: RUN_WORK,
  insertSource: RUN_WORK,
  insertStream: RUN_WORK,
};

const WORK_WITH_TRANSACTION_MASK = workMasks(WORK_WITH_TRANSACTION);
const WORK_WITH_RUN_MASK = workMasks(WORK_WITH_RUN);

/**
 * The runs each member of the proxy's transaction may hold. A script holds its COPY (a COPY outside BEGIN runs in a
 * script of one statement) and its INSERT … SELECT (a statement of a script, or a stream outside BEGIN wrapped in one),
 * never a cursor run: no request of a script is ever made a cursor (route-request.ts `isCursorRequest`, a row-limited
 * Execute or no Sync) —
 * - a multi-statement Query's statements are each a Query (ended like a Sync);
 * - an extended batch's statements (extended-script.ts `splitStatements`) each end with the proxy's Sync, and a
 *   row-limited Execute in such a batch is refused (0A000) before the script opens;
 * - the script of one statement around a write on several shards opens after routing, and a cursor over a write is
 *   refused there first (cursor-requests.ts `asCursor`, 0A000: a plan with a transactional write also `mayWrite`);
 * - an INSERT … SELECT's query (insert-source.ts `sourceRequest`: Execute without a limit, then Sync) and its stream's
 *   steps (sent as they are, not routed) are not cursors either;
 * - and a cursor run left from the request before is dropped when the next request is routed, before any script opens.
 * What a script can meet is the proxy's portals of an earlier cursor, answered without a run (cursor-requests.ts
 * `answerFromPortals`, which then ends the statement into the script).
 */
const RUNS_WITH_TRANSACTION: Readonly<Record<ProxyTransactionKind, readonly RequestRunKind[]>> = {
  none: ['none', 'copyIn', 'cursorRun', 'insertSource', 'insertStream'],
  script: ['none', 'copyIn', 'insertSource', 'insertStream'],
};

/** Whether the proxy's transaction `transaction` may hold the request's run `run`. */
export function canHoldRun(transaction: ProxyTransactionKind, run: RequestRunKind): boolean {
  return RUNS_WITH_TRANSACTION[transaction].includes(run);
}

/** Whether the request's work `work` may be in flight with the proxy's transaction and run as they are. */
export function canCombine(
  transaction: ProxyTransactionKind,
  run: RequestRunKind,
  work: RequestWorkKind,
): boolean {
  const bit = WORK_BIT[work];
  return (
    (WORK_WITH_TRANSACTION_MASK[transaction] & bit) !== 0 &&
    (WORK_WITH_RUN_MASK[run] & bit) !== 0 &&
    canHoldRun(transaction, run)
  );
}

// The members without a payload, made once: the single-shard path moves through them without allocating.
const IDLE: RequestWork = { kind: 'idle' };
export const ACQUIRING: RequestWork = { kind: 'acquiring' };
export const OWN: RequestWork = { kind: 'own' };
export const COMMITTING: RequestWork = { kind: 'committing' };
const NO_TRANSACTION: ProxyTransaction = { kind: 'none' };
const NO_RUN: RequestRun = { kind: 'none' };

export class RequestState {
  private current: RequestWork = IDLE;
  private proxyTransaction: ProxyTransaction = NO_TRANSACTION;
  private requestRun: RequestRun = NO_RUN;
  /** `single` per shard, made once. */
  private readonly singles: readonly RequestWork[];

  constructor(shardCount: number) {
    this.singles = Array.from({ length: shardCount }, (_, shard) => ({ kind: 'single', shard }) as const);
  }

  get work(): RequestWork {
    return this.current;
  }

  get kind(): RequestWorkKind {
    return this.current.kind;
  }

  /** The `single` state on `shard` (the same value each time). */
  single(shard: number): RequestWork {
    return this.singles[shard];
  }

  /** No request is in flight: the next one may be routed. */
  get isIdle(): boolean {
    return this.current.kind === 'idle';
  }

  /** Servers are being checked out for the request. */
  get isAcquiring(): boolean {
    return this.current.kind === 'acquiring';
  }

  /** A server works on the request (not idle, not waiting for a server or for another transaction's phase 2). */
  get isActive(): boolean {
    const kind = this.current.kind;
    return kind !== 'idle' && kind !== 'acquiring' && kind !== 'waiting';
  }

  /** The shard a single-shard request in flight went to, or null. */
  get singleShard(): number | null {
    return this.current.kind === 'single' ? this.current.shard : null;
  }

  /** The fan-out in flight, or null. */
  get fanout(): Fanout | null {
    return this.current.kind === 'fanout' ? this.current.fanout : null;
  }

  get isCommitting(): boolean {
    return this.current.kind === 'committing';
  }

  get isLookingUp(): boolean {
    return this.current.kind === 'lookup';
  }

  /** The request waits before it is sent (another transaction's phase 2 on its shards). */
  get isWaiting(): boolean {
    return this.current.kind === 'waiting';
  }

  /** The one place the work changes; throws on an impossible move (a bug, never a runtime condition). */
  move(next: RequestWork): void {
    if (!canMoveWork(this.current.kind, next.kind)) {
      throw new Error(`sharded request: illegal state change ${this.current.kind} → ${next.kind}`);
    }
    // With both slots empty every work combines (the table's none rows): the single-shard path skips the look-up.
    if (this.proxyTransaction !== NO_TRANSACTION || this.requestRun !== NO_RUN)
      this.checkCombination(this.proxyTransaction.kind, this.requestRun.kind, next.kind);
    this.current = next;
  }

  /** The proxy's transaction around several requests (none, or a script). */
  get transaction(): ProxyTransaction {
    return this.proxyTransaction;
  }

  /** The script running, or null. */
  get script(): ScriptRun | null {
    const t = this.proxyTransaction;
    return t.kind === 'script' ? t.script : null;
  }

  /** The one place the proxy's transaction changes; throws on an impossible move or combination. */
  moveTransaction(next: ProxyTransaction): void {
    const from = this.proxyTransaction.kind;
    if (!canMoveTransaction(from, next.kind)) {
      throw new Error(`sharded request: illegal transaction change ${from} → ${next.kind}`);
    }
    this.checkCombination(next.kind, this.requestRun.kind, this.current.kind);
    this.proxyTransaction = next;
  }

  /** The script ended (through moveTransaction). */
  endScript(): void {
    this.moveTransaction(NO_TRANSACTION);
  }

  /** The request's run that outlives one step (none, a split COPY, a cursor run, an INSERT … SELECT's query). */
  get run(): RequestRun {
    return this.requestRun;
  }

  /** The split COPY in flight, or null. */
  get copyIn(): CopyInSplit | null {
    const r = this.requestRun;
    return r.kind === 'copyIn' ? r.copy : null;
  }

  /** The cursor run in flight, or null. */
  get cursorRun(): CursorRun | null {
    const r = this.requestRun;
    return r.kind === 'cursorRun' ? r.run : null;
  }

  /** The INSERT … SELECT whose query the proxy evaluates (collected), or null. */
  get insertSource(): InsertSourceRun | null {
    const r = this.requestRun;
    return r.kind === 'insertSource' ? r.run : null;
  }

  /** The INSERT … SELECT streamed batch by batch, or null. */
  get insertStream(): InsertStreamRun | null {
    const r = this.requestRun;
    return r.kind === 'insertStream' ? r.run : null;
  }

  /**
   * The request's statements run for the proxy — a script's, or an INSERT … SELECT's query it evaluates: their replies
   * go through a fan-out even on one shard (the ReadyForQuery, or the rows, are the proxy's), and their writes follow
   * on the servers held.
   */
  get isOwnRun(): boolean {
    if (this.proxyTransaction !== NO_TRANSACTION) return true;
    const kind = this.requestRun.kind;
    return kind === 'insertSource' || kind === 'insertStream';
  }

  /** The one place the request's run changes; throws on an impossible move or combination. */
  moveRun(next: RequestRun): void {
    const from = this.requestRun.kind;
    if (!canMoveRun(from, next.kind))
      throw new Error(`sharded request: illegal run change ${from} → ${next.kind}`);
    this.checkCombination(this.proxyTransaction.kind, next.kind, this.current.kind);
    this.requestRun = next;
  }

  /** The run of kind `kind` ended: back to none (through moveRun); throws when another run is in the slot. */
  endRun(kind: Exclude<RequestRunKind, 'none'>): void {
    if (this.requestRun.kind !== kind)
      throw new Error(`sharded request: run ${kind} ended while the run is ${this.requestRun.kind}`);
    this.moveRun(NO_RUN);
  }

  /** Forget the run of kind `kind` if it is the one in the slot (a new request is routed: a cursor run left over). */
  dropRun(kind: Exclude<RequestRunKind, 'none'>): void {
    if (this.requestRun.kind === kind) this.moveRun(NO_RUN);
  }

  private checkCombination(
    transaction: ProxyTransactionKind,
    run: RequestRunKind,
    work: RequestWorkKind,
  ): void {
    if (!canCombine(transaction, run, work)) {
      throw new Error(
        `sharded request: impossible combination: work ${work} with transaction ${transaction} and run ${run}`,
      );
    }
  }

  /** The work of kind `kind` ended: back to idle (through `move`). */
  end(kind: Exclude<RequestWorkKind, 'idle'>): void {
    if (this.current.kind !== kind)
      throw new Error(`sharded request: ${kind} ended while the state is ${this.current.kind}`);
    this.move(IDLE);
  }
}

// What a sharded session's request in flight is doing, as one value changed in one place (PgBouncer's client states,
// txn/transaction.ts's table): idle (no request in flight, or one sent without Sync that owes nothing), acquiring
// (waiting for server checkouts: shard-servers.ts), single (sent to one shard, which answers the client directly until
// its ReadyForQuery), own (statements of the proxy's own on held servers — ROLLBACK, a Sync, the block's cut — whose
// replies never reach the client), a lookup of the proxy's own before the request can be routed (a table's columns,
// catalog facts, sequence values: route-lookups.ts), a wait before it is sent (atomic visibility: visibility-waits.ts),
// a fan-out whose replies are merged, or a commit the proxy carries out across shards (commit-run.ts). `move` is the
// only place it changes and refuses impossible moves (one at a time, each ended — back to idle — before the next);
// busy / idle / waiting for a server / active are all read from it. The request's modes that span several of these
// steps — a script, a split COPY, a cursor run, an INSERT … SELECT's query — are still kept by their run modules
// (script-run.ts, copy-in-run.ts, cursor-requests.ts, insert-run.ts); see docs/plans/engine.md.
import type { Fanout } from './fanout.js';

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

/** Whether the request's work may go from `from` to `to`. */
export function canMoveWork(from: RequestWorkKind, to: RequestWorkKind): boolean {
  return NEXT[from].includes(to);
}

// The members without a payload, made once: the single-shard path moves through them without allocating.
const IDLE: RequestWork = { kind: 'idle' };
export const ACQUIRING: RequestWork = { kind: 'acquiring' };
export const OWN: RequestWork = { kind: 'own' };
export const COMMITTING: RequestWork = { kind: 'committing' };

export class RequestState {
  private current: RequestWork = IDLE;
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

  /** The one place the state changes; throws on an impossible move (a bug, never a runtime condition). */
  move(next: RequestWork): void {
    if (!canMoveWork(this.current.kind, next.kind)) {
      throw new Error(`sharded request: illegal state change ${this.current.kind} → ${next.kind}`);
    }
    this.current = next;
  }

  /** The work of kind `kind` ended: back to idle (through `move`). */
  end(kind: Exclude<RequestWorkKind, 'idle'>): void {
    if (this.current.kind !== kind)
      throw new Error(`sharded request: ${kind} ended while the state is ${this.current.kind}`);
    this.move(IDLE);
  }
}

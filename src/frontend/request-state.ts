// What a sharded session's request in flight is doing on the proxy's side, as one value changed in one place: nothing
// (the shards answer it directly, or no request runs), a lookup of the proxy's own before it can be routed (a table's
// columns, catalog facts, sequence values), a wait before it is sent (two_phase_commit_reply = "at_decision": the
// phase 2 of a commit answered early, visibility-waits.ts), a fan-out whose replies are merged, or a commit the proxy
// carries out across shards. `move` refuses impossible moves (one of these at a time, each ended before the next starts). The
// request's modes that span several of these — a script, a split COPY, a cursor run, an INSERT … SELECT's query —
// are kept beside it by the dispatch (sharded-dispatch.ts).
import type { Fanout } from './fanout.js';

export type RequestWork =
  | { readonly kind: 'none' }
  | { readonly kind: 'lookup'; readonly what: string }
  | { readonly kind: 'waiting'; readonly what: string }
  | { readonly kind: 'fanout'; readonly fanout: Fanout }
  | { readonly kind: 'committing' };

export type RequestWorkKind = RequestWork['kind'];

const NEXT: Readonly<Record<RequestWorkKind, readonly RequestWorkKind[]>> = {
  none: ['lookup', 'waiting', 'fanout', 'committing'],
  lookup: ['none'],
  waiting: ['none'],
  fanout: ['none'],
  committing: ['none'],
};

/** Whether the request's work may go from `from` to `to`. */
export function canMoveWork(from: RequestWorkKind, to: RequestWorkKind): boolean {
  return NEXT[from].includes(to);
}

const NONE: RequestWork = { kind: 'none' };

export class RequestState {
  private current: RequestWork = NONE;

  get work(): RequestWork {
    return this.current;
  }

  /** Nothing of the proxy's own is running for the request (the shards may still be answering it). */
  get isIdle(): boolean {
    return this.current.kind === 'none';
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

  /** The work of kind `kind` ended: back to none. */
  end(kind: Exclude<RequestWorkKind, 'none'>): void {
    if (this.current.kind !== kind)
      throw new Error(`sharded request: ${kind} ended while the state is ${this.current.kind}`);
    this.current = NONE;
  }
}

// A session's read/write split override (`SET pgdog.role`) and the read-your-writes positions its client brings
// (`SET pgdog.min_lsn`), kept as PostgreSQL keeps a setting (and PgDog keeps pgdog.role): a SET outside a transaction
// block holds for the session at once; inside a block it holds for the rest of the block, and for the session once the
// block commits — a block that rolls back, or failed, undoes it; SET LOCAL holds to the end of its block only (outside
// one it does nothing, as in PostgreSQL); RESET (RESET ALL, DISCARD ALL) is a SET back to no override. A position
// required for the session stays until every replica has replayed it (read-your-writes.ts): RESET does not take back
// one required already. Fed a request's statements in order (read-intent.ts classifyTexts) and, before a request, the
// session's transaction status when it is known to be current (`sync`): a block opens at BEGIN or when the status says
// a transaction is open, fails when it says so, and is over when a later request finds the session idle — committed
// unless it failed or ended with ROLLBACK — or when the proxy ended it (`blockEnded`: sharded sessions). Not followed: ROLLBACK TO SAVEPOINT (a SET since the savepoint stays, as in
// PgDog). Pure.
import { TxStatus } from '../protocol/codes.js';

export type RoleOverride = 'primary' | 'replica' | null;

/** What classifyTexts reports of a request's statements, in order. */
export interface OverrideEvents {
  /** The override in effect now (for the request's own routing). */
  readonly role: RoleOverride;
  /** BEGIN / START TRANSACTION. */
  begin(): void;
  /** COMMIT / END / PREPARE TRANSACTION (`isCommit`), ROLLBACK / ABORT; `isChain`: AND CHAIN. */
  end(isCommit: boolean, isChain: boolean): void;
  /** SET [LOCAL] pgdog.role (null: RESET, RESET ALL, DISCARD ALL). */
  setRole(role: RoleOverride, isLocal: boolean): void;
  /** SET [LOCAL] pgdog.min_lsn (null: RESET). */
  setPositions(positions: ReadonlyMap<number, bigint> | null, isLocal: boolean): void;
}

/** Positions merged into `into` (the higher per shard); `into` null: a copy. */
function merge(into: Map<number, bigint> | null, from: ReadonlyMap<number, bigint>): Map<number, bigint> {
  const out = into ?? new Map<number, bigint>();
  for (const [shard, lsn] of from) {
    const known = out.get(shard);
    if (known === undefined || lsn > known) out.set(shard, lsn);
  }
  return out;
}

export class ReadOverrides implements OverrideEvents {
  /** The session's pgdog.role: set outside a block, or in one that committed. */
  private sessionRole: RoleOverride = null;
  private isInBlock = false;
  /** SET / RESET pgdog.role in the open block (undefined: none): the session's if the block commits. */
  private blockRole: RoleOverride | undefined = undefined;
  /** SET LOCAL pgdog.role in the open block (undefined: none): gone with the block. */
  private localRole: RoleOverride | undefined = undefined;
  /** SET pgdog.min_lsn in the open block: required for the session if the block commits. */
  private blockPositions: Map<number, bigint> | null = null;
  /** SET LOCAL pgdog.min_lsn in the open block. */
  private localPositions: Map<number, bigint> | null = null;
  /** The open block failed (its end is a rollback whatever the client sends). */
  private hasFailed = false;
  /** How the open block was last asked to end (null: not yet, or that end did not happen). */
  private ending: 'commit' | 'rollback' | null = null;
  /** Positions that now hold for the session (read-your-writes.ts `require`). */
  private readonly require: (positions: ReadonlyMap<number, bigint>) => void;

  constructor(require: (positions: ReadonlyMap<number, bigint>) => void) {
    this.require = require;
  }

  get role(): RoleOverride {
    if (this.localRole !== undefined) return this.localRole;
    return this.blockRole !== undefined ? this.blockRole : this.sessionRole;
  }

  /** The open block holds settings whose fate its end decides (every request must then be followed). */
  get hasPending(): boolean {
    return (
      this.isInBlock &&
      (this.blockRole !== undefined ||
        this.localRole !== undefined ||
        this.blockPositions !== null ||
        this.localPositions !== null)
    );
  }

  /** The position the open block's SETs ask of `shard`'s reads (null: none). */
  blockPosition(shard: number): bigint | null {
    const a = this.blockPositions?.get(shard) ?? null;
    const b = this.localPositions?.get(shard) ?? null;
    return a === null ? b : b === null || a >= b ? a : b;
  }

  /**
   * The session's transaction status before a request, known to be current (every request sent before has been
   * answered): idle ends a block still open here; in a transaction, a block opens here if none is; failed, it is
   * failed, and an end asked for did not happen (PostgreSQL skipped it after the error).
   */
  sync(txStatus: number): void {
    if (txStatus === TxStatus.Idle) {
      if (this.isInBlock) this.settle(this.ending !== 'rollback' && !this.hasFailed);
      return;
    }
    if (!this.isInBlock) this.open();
    else this.ending = null; // still in the transaction: an end asked for did not happen
    if (txStatus === TxStatus.Failed) this.hasFailed = true;
  }

  /**
   * The open block ended, committed or not, as the proxy itself saw it end (a sharded session's transaction block:
   * txn/transaction-block.ts, which knows of the COMMIT it ran across shards and a failed block's end).
   */
  blockEnded(isCommitted: boolean): void {
    if (this.isInBlock) this.settle(isCommitted);
  }

  begin(): void {
    if (this.isInBlock && this.ending === null) return; // already in a transaction: PostgreSQL only warns
    if (this.isInBlock) this.settle(this.ending === 'commit' && !this.hasFailed);
    this.open();
  }

  end(isCommit: boolean, isChain: boolean): void {
    if (!this.isInBlock) return; // no transaction in progress: PostgreSQL only warns
    if (!isChain) {
      this.ending = isCommit ? 'commit' : 'rollback';
      return;
    }
    this.settle(isCommit && !this.hasFailed);
    this.open();
  }

  setRole(role: RoleOverride, isLocal: boolean): void {
    if (!this.isInBlock) {
      if (!isLocal) this.sessionRole = role;
    } else if (isLocal) {
      this.localRole = role;
    } else {
      this.blockRole = role;
      this.localRole = undefined; // a SET after SET LOCAL replaces it, as in PostgreSQL
    }
  }

  setPositions(positions: ReadonlyMap<number, bigint> | null, isLocal: boolean): void {
    if (!this.isInBlock) {
      if (!isLocal && positions !== null) this.require(positions);
    } else if (positions === null) {
      this.blockPositions = this.localPositions = null;
    } else if (isLocal) {
      this.localPositions = merge(this.localPositions, positions);
    } else {
      this.blockPositions = merge(this.blockPositions, positions);
    }
  }

  private open(): void {
    this.isInBlock = true;
    this.hasFailed = false;
    this.ending = null;
  }

  /** The open block is over: its SETs hold for the session if it committed; its SET LOCALs are gone either way. */
  private settle(isCommitted: boolean): void {
    if (isCommitted) {
      if (this.blockRole !== undefined) this.sessionRole = this.blockRole;
      if (this.blockPositions !== null) this.require(this.blockPositions);
    }
    this.isInBlock = false;
    this.blockRole = this.localRole = undefined;
    this.blockPositions = this.localPositions = null;
    this.hasFailed = false;
    this.ending = null;
  }
}

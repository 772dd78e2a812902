// The client's transaction block on a sharded database, as the proxy keeps it: BEGIN opens it without touching any
// shard; a shard joins when a statement first needs it, and runs the block's opening statements before that statement
// (BEGIN with its isolation level and access mode, SET TRANSACTION / SET LOCAL / SET, SAVEPOINT / RELEASE / ROLLBACK
// TO), so every participant is in the state the client expects; COMMIT / ROLLBACK end it. Pure bookkeeping: the
// dispatch (sharded-dispatch.ts) decides what to send where.
import { quoteIdentifier } from '../router/sql-text.js';

/** A statement kept for shards that join later. */
interface ReplayEntry {
  /** `savepoint`: a SAVEPOINT (`name`); `other`: any other statement, replayed as written. */
  readonly kind: 'savepoint' | 'other';
  readonly name: string | null;
  readonly text: string;
  /** The BEGIN or a SET TRANSACTION: the transaction's characteristics, which a chained block keeps. */
  readonly isCharacteristic: boolean;
}

/** How a block ends: for good, or AND CHAIN (a new block with the same characteristics) on the same shards or none. */
export type BlockEnd = 'none' | 'sameShards' | 'lazy';

/** A transaction-scope statement of the request in flight, kept once it succeeded. */
export type ScopeStatement =
  | {
      readonly kind: 'savepoint';
      readonly action: 'savepoint' | 'release' | 'rollback_to';
      readonly name: string;
    }
  /** `isCharacteristic`: SET TRANSACTION (isolation level, access mode), which AND CHAIN carries over. */
  | { readonly kind: 'setting'; readonly text: string; readonly isCharacteristic?: boolean };

/**
 * Longest replay kept: an ORM opening and releasing savepoints in a loop keeps it short (RELEASE and ROLLBACK TO
 * fold entries away); past this many statements a joining shard could not be brought in step cheaply, and the
 * transaction refuses to reach new shards instead (see `canJoin`).
 */
const MAX_REPLAY = 1000;

export class TransactionScope {
  /** The statements a joining shard runs first (the BEGIN first); null when no transaction block is open. */
  private replay: ReplayEntry[] | null = null;
  /** The BEGIN that opened the block (AND CHAIN starts the next block with it). */
  private beginText = 'BEGIN';
  /** Shards the open block has reached (their BEGIN sent), in no order. */
  readonly joined = new Set<number>();
  private pending: ScopeStatement | null = null;

  get isOpen(): boolean {
    return this.replay !== null;
  }

  /** BEGIN / START TRANSACTION outside a block: `text` as the client wrote it (options included). */
  open(text: string): void {
    this.beginText = text;
    this.replay = [{ kind: 'other', name: null, text, isCharacteristic: true }];
    this.joined.clear();
    this.pending = null;
  }

  /**
   * A block the proxy did not see open (a shard began it inside a multi-statement Query routed to it whole): shards
   * that join later run a plain BEGIN.
   */
  adopt(shards: Iterable<number>): void {
    if (this.replay === null) this.open('BEGIN');
    for (const shard of shards) this.joined.add(shard);
  }

  /**
   * COMMIT / ROLLBACK: the block is over. AND CHAIN: a new one starts with the same characteristics (its BEGIN and SET
   * TRANSACTIONs) — on the same shards when they chained it themselves ('sameShards'), on none yet when the proxy ended
   * the transaction on them ('lazy': each joins again when first needed).
   */
  close(end: BlockEnd = 'none'): void {
    this.pending = null;
    if (end === 'none' || this.replay === null) {
      this.replay = null;
      this.joined.clear();
      return;
    }
    this.replay = this.replay.filter((e) => e.isCharacteristic);
    if (this.replay.length === 0)
      this.replay = [{ kind: 'other', name: null, text: this.beginText, isCharacteristic: true }];
    if (end === 'lazy') this.joined.clear();
  }

  /** The open block's characteristics: its BEGIN and SET TRANSACTIONs, in order (empty when no block is open). */
  characteristics(): string[] {
    return (this.replay ?? []).filter((e) => e.isCharacteristic).map((e) => e.text);
  }

  /** Whether a shard may still join (the replay is bounded). */
  get canJoin(): boolean {
    return this.replay !== null && this.replay.length <= MAX_REPLAY;
  }

  /** The statements a shard joining now runs before the client's statement (one simple Query). */
  joinSql(): string {
    // A newline before ';': a statement may end in a -- comment.
    return (this.replay ?? []).map((e) => e.text).join('\n;') + '\n;';
  }

  /** The request in flight carries this statement; `confirm` keeps it once the request succeeded. */
  expect(statement: ScopeStatement): void {
    this.pending = statement;
  }

  /** The request in flight failed (or carried no transaction-scope statement): nothing to keep. */
  dropPending(): void {
    this.pending = null;
  }

  /** The request in flight succeeded: its transaction-scope statement now holds for shards that join later. */
  confirm(): void {
    const s = this.pending;
    this.pending = null;
    const replay = this.replay;
    if (s === null || replay === null) return;
    if (s.kind === 'setting') {
      replay.push({ kind: 'other', name: null, text: s.text, isCharacteristic: s.isCharacteristic === true });
      return;
    }
    const at = lastSavepoint(replay, s.name);
    switch (s.action) {
      case 'savepoint':
        // The parser gives the name case-folded and unquoted; quoted, a keyword is a name too.
        replay.push({
          kind: 'savepoint',
          name: s.name,
          text: `SAVEPOINT ${quoteIdentifier(s.name)}`,
          isCharacteristic: false,
        });
        return;
      case 'rollback_to':
        // Everything after the savepoint is undone; the savepoint itself stays.
        if (at >= 0) replay.length = at + 1;
        return;
      case 'release': {
        if (at < 0) return;
        // The savepoint and the ones after it are gone; what ran after them (SET LOCAL …) stays in effect.
        const kept = replay.slice(at).filter((e) => e.kind !== 'savepoint');
        replay.length = at;
        replay.push(...kept);
        return;
      }
    }
  }
}

function lastSavepoint(replay: readonly ReplayEntry[], name: string): number {
  for (let i = replay.length - 1; i >= 0; i--) {
    if (replay[i].kind === 'savepoint' && replay[i].name === name) return i;
  }
  return -1;
}

// What a shard joining a sharded session's transaction block late runs first, so that it is in the state the client
// expects: the BEGIN with its isolation level and access mode, then SET TRANSACTION / SET LOCAL / SET, and SAVEPOINT /
// RELEASE / ROLLBACK TO folded (a RELEASE or ROLLBACK TO drops what it undoes). A statement is kept only once its
// request succeeded. Pure; the transaction block (transaction-block.ts) owns one and says when a block starts or ends.
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

export class BlockReplay {
  /** The statements a joining shard runs first, the BEGIN first (empty when no block is open). */
  private entries: ReplayEntry[] = [];
  /** The BEGIN that opened the block (AND CHAIN starts the next block with it). */
  private beginText = 'BEGIN';
  private pending: ScopeStatement | null = null;

  /** A block starts with `text` (BEGIN / START TRANSACTION as the client wrote it, options included). */
  start(text: string): void {
    this.beginText = text;
    this.entries = [{ kind: 'other', name: null, text, isCharacteristic: true }];
    this.pending = null;
  }

  /** The block is over for good. */
  clear(): void {
    this.entries = [];
    this.pending = null;
  }

  /** COMMIT / ROLLBACK AND CHAIN: the next block keeps the characteristics (its BEGIN and SET TRANSACTIONs). */
  chain(): void {
    this.pending = null;
    this.entries = this.entries.filter((e) => e.isCharacteristic);
    if (this.entries.length === 0)
      this.entries = [{ kind: 'other', name: null, text: this.beginText, isCharacteristic: true }];
  }

  /** Whether a shard may still join (the replay is bounded). */
  get canJoin(): boolean {
    return this.entries.length <= MAX_REPLAY;
  }

  /** The statements a shard joining now runs before the client's statement (one simple Query). */
  joinSql(): string {
    // A newline before ';': a statement may end in a -- comment.
    return this.entries.map((e) => e.text).join('\n;') + '\n;';
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
    const replay = this.entries;
    if (s === null || replay.length === 0) return;
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

// The transaction block of a sharded session (txn/transaction-block.ts), without sockets: where transaction-control
// statements and settings go (BEGIN answered by the proxy, COMMIT / ROLLBACK to the shards reached or answered when
// none, a failed transaction's COMMIT rolled back everywhere, SAVEPOINT / SET inside a block to the shards reached),
// who joined and who wrote, the status after each request (refresh, over a fake host), and every phase move.
import { describe, expect, it } from 'vitest';
import {
  canMovePhase,
  TransactionBlock,
  type BlockHost,
  type BlockPhase,
} from '../../../src/txn/transaction-block.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { TxStatus } from '../../../src/protocol/codes.js';

const I = TxStatus.Idle;
const T = TxStatus.InTransaction;
const E = TxStatus.Failed;

function plan(
  kind: string,
  text: string,
  transaction: Partial<NonNullable<StatementPlan['transaction']>> = {},
): StatementPlan {
  return {
    kind,
    text,
    transaction: { chain: false, savepointAction: null, savepoint: null, ...transaction },
  } as unknown as StatementPlan;
}

/** The session as the block sees it: each shard's server status (null: none held), and what it was told. */
class FakeHost implements BlockHost {
  statuses: (number | null)[] = [null, null, null];
  kept: boolean[] = [];
  ends: { isCommitted: boolean; shards: number[] }[] = [];
  get shardCount(): number {
    return this.statuses.length;
  }
  statusOn(shard: number): number | null {
    return this.statuses[shard];
  }
  combinedStatus(): number {
    if (this.statuses.includes(E)) return E;
    return this.statuses.includes(T) ? T : I;
  }
  keepRequestSettings(isKept: boolean): void {
    this.kept.push(isKept);
  }
  blockEnded(isCommitted: boolean, shards: ReadonlySet<number>): void {
    this.ends.push({ isCommitted, shards: [...shards].sort() });
  }
}

function block(): { b: TransactionBlock; host: FakeHost; ended: () => number } {
  const host = new FakeHost();
  const b = new TransactionBlock(host);
  return { b, host, ended: () => host.ends.length };
}

/** The join SQL a shard joining now would run (observed through participate). */
function joinSqlOf(b: TransactionBlock, shard: number): string {
  let sql = '';
  b.participate([shard], { mayWrite: false, preventsPrepare: null }, (_, s) => (sql = s));
  return sql;
}

const pick = (): number => 1;
/** The tag of a CommandComplete frame. */
const tagOf = (frame: Buffer): string => frame.toString('utf8', 5, frame.length - 1);

describe('TransactionBlock.place', () => {
  it('answers BEGIN itself and opens the block with its text; a second BEGIN warns', () => {
    const { b } = block();
    const begin = b.place(plan('begin', 'BEGIN ISOLATION LEVEL SERIALIZABLE'), I, pick);
    expect(begin.kind === 'answer' && [tagOf(begin.reply.tag), begin.reply.status]).toEqual(['BEGIN', T]);
    expect(b.phase).toBe('open');
    const again = b.place(plan('begin', 'BEGIN'), T, pick);
    expect(again.kind === 'answer' && again.reply.notice?.toString('latin1')).toContain('25001');
    // Reached a shard: the shards warn themselves.
    expect(joinSqlOf(b, 0)).toContain('BEGIN ISOLATION LEVEL SERIALIZABLE');
    expect(b.place(plan('begin', 'BEGIN'), T, pick)).toEqual({ kind: 'shards', shards: [0] });
  });

  it('COMMIT / ROLLBACK of a block no shard joined: answered, the block ends (AND CHAIN: starts again)', () => {
    const { b, ended } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    const commit = b.place(plan('commit', 'COMMIT'), T, pick);
    expect(commit.kind === 'answer' && [tagOf(commit.reply.tag), commit.reply.status]).toEqual(['COMMIT', I]);
    expect([b.isOpen, b.phase, ended()]).toEqual([false, 'none', 1]);
    b.place(plan('begin', 'BEGIN'), I, pick);
    const chained = b.place(plan('rollback', 'ROLLBACK AND CHAIN', { chain: true }), T, pick);
    expect(chained.kind === 'answer' && [tagOf(chained.reply.tag), chained.reply.status]).toEqual([
      'ROLLBACK',
      T,
    ]);
    expect([b.isOpen, b.phase]).toEqual([true, 'open']);
  });

  it('COMMIT goes to the shards reached; a failed transaction’s COMMIT on several shards rolls back everywhere', () => {
    const { b } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.adopt([2, 0]);
    expect(b.place(plan('commit', 'COMMIT'), T, pick)).toEqual({ kind: 'shards', shards: [0, 2] });
    const failed = b.place(plan('commit', 'COMMIT'), E, pick);
    expect(failed.kind).toBe('rollback');
    expect(failed.kind === 'rollback' && [failed.shards, tagOf(failed.reply.tag)]).toEqual([
      [0, 2],
      'ROLLBACK',
    ]);
  });

  it('SAVEPOINT and SET inside a block go to the shards reached, or one picked; outside as before', () => {
    const { b } = block();
    expect(b.place(plan('set', 'SET x.y = 1'), I, pick)).toEqual({ kind: 'shards', shards: 'all' });
    expect(b.place(plan('savepoint', 'SAVEPOINT a'), I, pick)).toEqual({ kind: 'shards', shards: [1] }); // its error
    b.place(plan('begin', 'BEGIN'), I, pick);
    const sp = plan('savepoint', 'SAVEPOINT a', { savepointAction: 'savepoint', savepoint: 'a' });
    expect(b.place(sp, T, pick)).toEqual({ kind: 'shards', shards: [1] });
    b.adopt([0, 1]);
    expect(b.place(plan('set', 'SET LOCAL x.y = 2'), T, pick)).toEqual({ kind: 'shards', shards: [0, 1] });
  });
});

describe('TransactionBlock participants (the one owner of who joined and who wrote)', () => {
  const effects = (mayWrite: boolean, preventsPrepare: string | null = null) => ({
    mayWrite,
    preventsPrepare,
  });

  it('joins each shard once, with the block’s opening statements, and records writers per request', () => {
    const { b } = block();
    b.place(plan('begin', 'BEGIN ISOLATION LEVEL REPEATABLE READ'), I, pick);
    const joins: [number, string][] = [];
    const join = (shard: number, sql: string): void => void joins.push([shard, sql]);
    b.participate([1], effects(false), join);
    b.participate([0, 1], effects(true), join);
    b.participate([1], effects(false), join);
    expect(joins.map(([shard]) => shard)).toEqual([1, 0]);
    expect(joins[0][1]).toContain('BEGIN ISOLATION LEVEL REPEATABLE READ');
    expect(b.participants()).toEqual({ shards: [0, 1], writers: new Set([0, 1]), preventsPrepare: null });
  });

  it('a read-only request makes a shard a reader; the first reason PREPARE is impossible is kept', () => {
    const { b } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    const join = (): void => undefined;
    b.participate([0], effects(false), join);
    b.participate([1], effects(true, 'it ran LISTEN, UNLISTEN or NOTIFY'), join);
    b.participate([1], effects(true, 'it used temporary objects'), join);
    expect(b.participants()).toEqual({
      shards: [0, 1],
      writers: new Set([1]),
      preventsPrepare: 'it ran LISTEN, UNLISTEN or NOTIFY',
    });
  });

  it('outside a block nothing joins, but writes are remembered until the block that adopts them commits', () => {
    const { b } = block();
    const joins: number[] = [];
    b.participate([0], effects(true), (shard) => joins.push(shard));
    expect(joins).toEqual([]);
    b.adopt([0]); // a shard began a transaction inside a Query routed to it whole
    b.participate([1], effects(true), (shard) => joins.push(shard));
    expect(b.participants().writers).toEqual(new Set([0, 1]));
    b.finish(true, 'none');
    expect(b.participants()).toEqual({ shards: [], writers: new Set(), preventsPrepare: null });
  });

  it('refuses a new shard once the replay is past its bound, but not a shard already reached', () => {
    const { b, host } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.participate([0], effects(false), () => undefined);
    host.statuses[0] = T; // shard 0's server is in the block
    for (let i = 0; i < 1001; i++) {
      b.place(plan('set', `SET LOCAL x.y = ${i}`), T, pick);
      b.refresh(false);
    }
    expect(b.canReach([0])).toBe(true);
    expect(b.canReach([0, 1])).toBe(false);
  });
});

describe('TransactionBlock.refresh (the status after each request, over the session servers)', () => {
  it('outside a block: idle, and the writes of a statement that ran alone are forgotten', () => {
    const { b, host } = block();
    b.participate([0, 1], { mayWrite: true, preventsPrepare: 'NOTIFY' }, () => undefined);
    expect(b.refresh(false)).toBe(I);
    expect(b.participants()).toEqual({ shards: [], writers: new Set(), preventsPrepare: null });
    expect([b.phase, host.kept, host.ends]).toEqual(['none', [], []]);
  });

  it('an open block no shard reached yet is "in transaction"; its SET is kept, a failed one dropped', () => {
    const { b, host } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    expect(b.refresh(false)).toBe(T);
    b.place(plan('set', 'SET LOCAL a.b = 1'), T, pick);
    expect(b.refresh(false)).toBe(T);
    b.place(plan('set', 'SET LOCAL a.b = oops'), T, pick);
    b.refresh(true);
    expect(host.kept).toEqual([true, true, false]);
    expect(joinSqlOf(b, 2)).toBe('BEGIN\n;SET LOCAL a.b = 1\n;');
  });

  it('adopts a transaction a shard began on its own, with the writes made before', () => {
    const { b, host } = block();
    b.participate([1], { mayWrite: true, preventsPrepare: null }, () => undefined);
    host.statuses[1] = T;
    expect(b.refresh(false)).toBe(T);
    expect([b.phase, b.joinedShards(), [...b.participants().writers]]).toEqual(['open', [1], [1]]);
    expect(joinSqlOf(b, 0)).toBe('BEGIN\n;');
  });

  it('ends the block when none of its shards is in a transaction any more (COMMIT ran on them)', () => {
    const { b, host } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.participate([0, 2], { mayWrite: true, preventsPrepare: null }, () => undefined);
    host.statuses = [T, null, T];
    b.refresh(false);
    expect(b.place(plan('commit', 'COMMIT'), T, pick)).toEqual({ kind: 'shards', shards: [0, 2] });
    expect(b.phase).toBe('ending');
    host.statuses = [I, null, I];
    expect(b.refresh(false)).toBe(I);
    expect([b.phase, b.joinedShards(), host.ends]).toEqual([
      'none',
      [],
      [{ isCommitted: true, shards: [0, 2] }],
    ]);
    expect(b.participants().writers.size).toBe(0);
  });

  it('COMMIT AND CHAIN run by the shards: the next block on the same shards, with no writes', () => {
    const { b, host } = block();
    b.place(plan('begin', 'BEGIN READ WRITE'), I, pick);
    b.participate([0, 1], { mayWrite: true, preventsPrepare: null }, () => undefined);
    host.statuses = [T, T, null];
    b.refresh(false);
    b.place(plan('commit', 'COMMIT AND CHAIN', { chain: true }), T, pick);
    expect(b.refresh(false)).toBe(T);
    expect([b.phase, b.joinedShards(), b.participants().writers.size]).toEqual(['open', [0, 1], 0]);
    expect(host.ends).toEqual([{ isCommitted: true, shards: [0, 1] }]);
    expect(joinSqlOf(b, 2)).toBe('BEGIN READ WRITE\n;');
  });

  it('a COMMIT the proxy ran (markEnding) that failed leaves the block ending → open while its shards are still in it', () => {
    const { b, host } = block();
    b.openImplicit();
    b.participate([0], { mayWrite: true, preventsPrepare: null }, () => undefined);
    host.statuses = [E, null, null];
    b.markEnding(false);
    expect(b.phase).toBe('ending');
    expect(b.refresh(true)).toBe(E);
    expect(b.phase).toBe('open');
    host.statuses = [I, null, null];
    b.markEnding(false);
    expect(b.refresh(false)).toBe(I);
    expect([b.phase, host.ends]).toEqual(['none', [{ isCommitted: false, shards: [0] }]]);
  });

  it('refuses impossible moves through its API: a second implicit block, ending a block that is not open', () => {
    const { b } = block();
    expect(() => b.finish(false, 'none')).toThrow(/illegal phase change none → none/);
    b.openImplicit();
    expect(() => b.openImplicit()).toThrow(/illegal phase change open → open/);
    b.markEnding(true);
    b.markEnding(false); // a second end of the same request changes only how it ends
    expect(b.phase).toBe('ending');
  });
});

describe('block phases', () => {
  const all: BlockPhase[] = ['none', 'open', 'ending'];
  const allowed: Record<BlockPhase, BlockPhase[]> = {
    none: ['open'],
    open: ['ending', 'none'],
    ending: ['none', 'open'],
  };
  for (const from of all)
    for (const to of all)
      it(`${allowed[from].includes(to) ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMovePhase(from, to)).toBe(allowed[from].includes(to));
      });
});

describe('a block the proxy rolled back on every shard (a distributed deadlock victim)', () => {
  function rolledBack(): { b: TransactionBlock; host: FakeHost } {
    const { b, host } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.participate([0, 1], { mayWrite: true, preventsPrepare: null }, () => undefined);
    host.statuses = [T, T, null];
    expect(b.refresh(false)).toBe(T);
    // The proxy ran ROLLBACK on shards 0 and 1 and gave their servers back.
    host.statuses = [null, null, null];
    b.rolledBackOnShards();
    return { b, host };
  }

  it('stays open and failed, with no shard and no writer left', () => {
    const { b } = rolledBack();
    expect(b.refresh(true)).toBe(E);
    expect(b.isOpen).toBe(true);
    expect(b.participants()).toEqual({ shards: [], writers: new Set(), preventsPrepare: null });
  });

  it('lets only ROLLBACK and COMMIT run, and answers both ROLLBACK without a shard', () => {
    const { b } = rolledBack();
    expect(b.canRunWhileFailed(plan('rollback', 'ROLLBACK'))).toBe(true);
    expect(b.canRunWhileFailed(plan('commit', 'COMMIT'))).toBe(true);
    expect(b.canRunWhileFailed(plan('savepoint', 'ROLLBACK TO s', { savepointAction: 'rollback_to' }))).toBe(
      false,
    );
    expect(b.canRunWhileFailed(plan('set', 'SET x = 1'))).toBe(false);
    expect(b.canRunWhileFailed(plan('begin', 'BEGIN'))).toBe(false);
    const placed = b.place(plan('commit', 'COMMIT'), E, pick);
    expect(placed.kind).toBe('answer');
    if (placed.kind !== 'answer') return;
    expect(tagOf(placed.reply.tag)).toBe('ROLLBACK');
    expect(placed.reply.status).toBe(I);
    expect(b.isOpen).toBe(false);
  });

  it('is forgotten once the block ends: the next block runs normally', () => {
    const { b, host } = rolledBack();
    b.place(plan('rollback', 'ROLLBACK'), E, pick);
    b.place(plan('begin', 'BEGIN'), I, pick);
    expect(b.refresh(false)).toBe(T);
    expect(b.canRunWhileFailed(plan('savepoint', 'ROLLBACK TO s', { savepointAction: 'rollback_to' }))).toBe(
      true,
    );
    host.statuses = [T, null, null];
    expect(b.refresh(false)).toBe(T);
  });
});

// Where a sharded session's transaction-control statements and settings go (transaction-block.ts): BEGIN answered by
// the proxy, COMMIT / ROLLBACK to the shards reached (or answered when none), a failed transaction's COMMIT rolled back
// everywhere, SAVEPOINT / SET inside a block to the shards reached (one picked when none yet).
import { describe, expect, it } from 'vitest';
import { TransactionBlock } from '../../../src/frontend/transaction-block.js';
import type { SessionRouter } from '../../../src/frontend/session-router.js';
import type { ShardServers } from '../../../src/frontend/shard-servers.js';
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

/** A block whose servers and router are never touched by `place` (refresh is tested through the integration suite). */
function block(): { b: TransactionBlock; ended: () => number } {
  let ended = 0;
  const b = new TransactionBlock(
    { byShard: [] } as unknown as ShardServers,
    {} as SessionRouter,
    () => ended++,
  );
  return { b, ended: () => ended };
}

const pick = (): number => 1;
/** The tag of a CommandComplete frame. */
const tagOf = (frame: Buffer): string => frame.toString('utf8', 5, frame.length - 1);

describe('TransactionBlock.place', () => {
  it('answers BEGIN itself and opens the block with its text; a second BEGIN warns', () => {
    const { b } = block();
    const begin = b.place(plan('begin', 'BEGIN ISOLATION LEVEL SERIALIZABLE'), I, pick);
    expect(begin.kind === 'answer' && [tagOf(begin.reply.tag), begin.reply.status]).toEqual(['BEGIN', T]);
    expect(b.scope.joinSql()).toContain('BEGIN ISOLATION LEVEL SERIALIZABLE');
    const again = b.place(plan('begin', 'BEGIN'), T, pick);
    expect(again.kind === 'answer' && again.reply.notice?.toString('latin1')).toContain('25001');
    // Reached a shard: the shards warn themselves.
    b.scope.joined.add(0);
    expect(b.place(plan('begin', 'BEGIN'), T, pick)).toEqual({ kind: 'shards', shards: [0] });
  });

  it('COMMIT / ROLLBACK of a block no shard joined: answered, the block ends (AND CHAIN: starts again)', () => {
    const { b, ended } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    const commit = b.place(plan('commit', 'COMMIT'), T, pick);
    expect(commit.kind === 'answer' && [tagOf(commit.reply.tag), commit.reply.status]).toEqual(['COMMIT', I]);
    expect([b.scope.isOpen, ended()]).toEqual([false, 1]);
    b.place(plan('begin', 'BEGIN'), I, pick);
    const chained = b.place(plan('rollback', 'ROLLBACK AND CHAIN', { chain: true }), T, pick);
    expect(chained.kind === 'answer' && [tagOf(chained.reply.tag), chained.reply.status]).toEqual([
      'ROLLBACK',
      T,
    ]);
    expect(b.scope.isOpen).toBe(true);
  });

  it('COMMIT goes to the shards reached; a failed transaction’s COMMIT on several shards rolls back everywhere', () => {
    const { b } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.scope.joined.add(2);
    b.scope.joined.add(0);
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
    b.scope.joined.add(0);
    b.scope.joined.add(1);
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
    b.scope.adopt([0]); // a shard began a transaction inside a Query routed to it whole
    b.participate([1], effects(true), (shard) => joins.push(shard));
    expect(b.participants().writers).toEqual(new Set([0, 1]));
    b.finish(true, 'none');
    expect(b.participants()).toEqual({ shards: [], writers: new Set(), preventsPrepare: null });
  });

  it('refuses a new shard once the replay is past its bound, but not a shard already reached', () => {
    const { b } = block();
    b.place(plan('begin', 'BEGIN'), I, pick);
    b.participate([0], effects(false), () => undefined);
    for (let i = 0; i < 1001; i++) {
      b.scope.expect({ kind: 'setting', text: `SET LOCAL x.y = ${i}` });
      b.scope.confirm();
    }
    expect(b.canReach([0])).toBe(true);
    expect(b.canReach([0, 1])).toBe(false);
  });
});

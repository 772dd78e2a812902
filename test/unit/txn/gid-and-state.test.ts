// GIDs (format, parsing back, telling ours from others') and the distributed transaction state machine.
import { describe, expect, it } from 'vitest';
import { gidLikePattern, makeGid, parseGid, TxidSource } from '../../../src/txn/gid.js';
import { DistributedTransaction, type BranchState, type TxState } from '../../../src/txn/transaction.js';

describe('GIDs', () => {
  it('round-trips instance id (with underscores), txid and shard', () => {
    const txid = new TxidSource(1_700_000_000_000).nextTxid();
    const gid = makeGid('host_a_6432', txid, 7);
    expect(gid).toMatch(/^sg_host_a_6432_[0-9a-z]+x1_7$/);
    expect(parseGid(gid)).toEqual({ instanceId: 'host_a_6432', txid, shard: 7 });
  });

  it('never repeats a txid within a process, nor across restarts at different times', () => {
    const a = new TxidSource(1_000);
    const b = new TxidSource(2_000);
    const ids = new Set([a.nextTxid(), a.nextTxid(), b.nextTxid(), b.nextTxid()]);
    expect(ids.size).toBe(4);
  });

  it("returns null for other software's GIDs and malformed ones", () => {
    for (const gid of [
      '',
      'pgdog_1_2',
      'sg_',
      'sg_x',
      'sg__1x1_0',
      'sg_a_1x1_',
      'sg_a_1x1_-1',
      'sg_a_NOPE_1',
      'sg_a_1x1_99999999',
    ]) {
      expect(parseGid(gid), gid).toBeNull();
    }
  });

  it('gives a LIKE pattern with _ escaped, matching only this instance', () => {
    expect(gidLikePattern('a_b')).toBe('sg\\_a\\_b\\_%');
  });
});

function tx(): DistributedTransaction {
  return new DistributedTransaction('1x1', 'db', 'u', [
    { shard: 0, role: 'writer', gid: 'g0', state: 'open' },
    { shard: 1, role: 'writer', gid: 'g1', state: 'open' },
    { shard: 2, role: 'reader', gid: null, state: 'open' },
  ]);
}

describe('DistributedTransaction state machine', () => {
  it('allows active → preparing → committing → done and preparing → aborting → aborted', () => {
    const t = tx();
    for (const s of ['preparing', 'committing', 'done'] as TxState[]) t.to(s);
    expect(t.isFinished).toBe(true);
    const u = tx();
    for (const s of ['preparing', 'aborting', 'aborted'] as TxState[]) u.to(s);
    expect(u.isFinished).toBe(true);
  });

  it('refuses illegal transitions (never commit after an abort started, never go back)', () => {
    const t = tx();
    expect(() => t.to('committing')).toThrow(/active → committing/);
    t.to('preparing');
    t.to('aborting');
    expect(() => t.to('committing')).toThrow(/illegal/);
    expect(() => t.to('done')).toThrow(/illegal/);
    const d = tx();
    d.to('done');
    expect(() => d.to('aborted')).toThrow(/illegal/);
  });

  it('lists writers, readers and the writers still to finish', () => {
    const t = tx();
    expect(t.writers.map((b) => b.shard)).toEqual([0, 1]);
    expect(t.readers.map((b) => b.shard)).toEqual([2]);
    t.moveBranch(t.writers[0], 'prepared');
    t.moveBranch(t.writers[0], 'committed');
    t.moveBranch(t.writers[1], 'prepared');
    expect(t.unfinishedWriters.map((b) => b.shard)).toEqual([1]);
    t.moveBranch(t.writers[1], 'rolled_back');
    expect(t.unfinishedWriters).toEqual([]);
  });

  it('starts a transaction recovery found decided in committing, its branches prepared', () => {
    const t = new DistributedTransaction(
      '2x2',
      'db',
      'u',
      [{ shard: 0, role: 'writer', gid: 'g0', state: 'prepared' }],
      'committing',
    );
    expect(t.state).toBe('committing');
    t.moveBranch(t.branchOn(0), 'committed');
    t.to('done');
    expect(t.isFinished).toBe(true);
  });
});

describe('branch transitions', () => {
  const all: BranchState[] = ['open', 'prepared', 'committed', 'rolled_back', 'failed'];
  const allowed: Record<BranchState, BranchState[]> = {
    open: ['prepared', 'failed', 'rolled_back'],
    prepared: ['committed', 'rolled_back'],
    committed: [],
    rolled_back: [],
    failed: [],
  };
  /** A writer branch brought to `state` through legal moves. */
  function writerIn(state: BranchState): { t: DistributedTransaction; shard: number } {
    const t = tx();
    const b = t.branchOn(0);
    if (state === 'committed' || state === 'prepared') t.moveBranch(b, 'prepared');
    if (state !== 'open' && state !== 'prepared') t.moveBranch(t.branchOn(0), state);
    return { t, shard: 0 };
  }

  for (const from of all) {
    for (const to of all) {
      const isAllowed = allowed[from].includes(to);
      it(`${isAllowed ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        const { t, shard } = writerIn(from);
        expect(t.branchOn(shard).state).toBe(from);
        const move = (): void => t.moveBranch(t.branchOn(shard), to);
        if (isAllowed) {
          move();
          expect(t.branchOn(shard).state).toBe(to);
        } else {
          expect(move).toThrow(/illegal writer branch change on shard 0/);
          expect(t.branchOn(shard).state).toBe(from);
        }
      });
    }
  }

  it('never moves a reader branch, nor a branch of another transaction', () => {
    const t = tx();
    expect(() => t.moveBranch(t.branchOn(2), 'prepared')).toThrow(/illegal reader branch change/);
    expect(() => t.moveBranch(tx().branchOn(0), 'prepared')).toThrow(/not its branch/);
    expect(() => t.branchOn(7)).toThrow(/no branch on shard 7/);
  });
});

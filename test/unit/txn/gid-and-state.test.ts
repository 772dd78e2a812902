// GIDs (format, parsing back, telling ours from others') and the distributed transaction state machine.
import { describe, expect, it } from 'vitest';
import { gidLikePattern, makeGid, parseGid, TxidSource } from '../../../src/txn/gid.js';
import { DistributedTransaction, type TxState } from '../../../src/txn/transaction.js';

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
    t.writers[0].state = 'committed';
    t.writers[1].state = 'prepared';
    expect(t.unfinishedWriters.map((b) => b.shard)).toEqual([1]);
    t.writers[1].state = 'failed';
    expect(t.unfinishedWriters).toEqual([]);
  });
});

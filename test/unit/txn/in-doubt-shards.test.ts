// SHOW TRANSACTIONS' `shards` of a transaction found in doubt on the shards: every shard once, in both layouts.
import { describe, expect, it } from 'vitest';
import { inDoubtShards } from '../../../src/txn/decision-recovery.js';

describe('inDoubtShards', () => {
  it('decision-COMMIT layout: the prepared branches, then the decision shard (no branch of its own)', () => {
    expect(inDoubtShards([1], 0)).toBe('1:prepared,0:decision');
    expect(inDoubtShards([0, 2], 1)).toBe('0:prepared,2:prepared,1:decision');
  });

  it('prepared-decision layout (atomic_visibility): the decision shard once, marked, in shard order', () => {
    expect(inDoubtShards([0, 1], 0)).toBe('0:decision prepared,1:prepared');
    expect(inDoubtShards([0, 1, 2], 2)).toBe('0:prepared,1:prepared,2:decision prepared');
  });
});

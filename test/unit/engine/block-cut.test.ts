// One cut for REPEATABLE READ / SERIALIZABLE blocks (engine/block-cut.ts), without sockets: which blocks need it
// (the last isolation level named, else the session default), and taking it in the fence over a fake clock — it waits
// for a writer holding a shard before anything is sent, leaves the fence once every shard answered, answers 40001
// when it cannot enter within the bound (nothing sent), and fails the shards' transactions when the bound ran out
// after the snapshots were sent.
import { describe, expect, it } from 'vitest';
import { CUT_SQL, isSnapshotPerBlock, takeCut } from '../../../src/engine/block-cut.js';
import type { PgError } from '../../../src/errors/pg-error.js';
import { VisibilityFence } from '../../../src/txn/visibility-fence.js';
import { FakeClock } from '../../helpers/fake-clock.js';

/** A cut over `fence`'s shards 0 and 1 whose statements are answered when the test says so. */
function cut(fence: VisibilityFence) {
  const state = {
    sent: [] as string[],
    answer: null as ((errors: Buffer[]) => void) | null,
    result: undefined as PgError | null | undefined,
  };
  takeCut(
    {
      fence,
      shards: [1, 0],
      timeoutMs: 100,
      run: (sql, done) => {
        state.sent.push(sql);
        state.answer = done;
      },
    },
    (err) => (state.result = err),
  );
  return state;
}

describe('isSnapshotPerBlock', () => {
  it('follows the last isolation level named, then the session default', () => {
    expect(isSnapshotPerBlock(['BEGIN'], undefined)).toBe(false);
    expect(isSnapshotPerBlock(['begin isolation level repeatable read'], undefined)).toBe(true);
    expect(isSnapshotPerBlock(['START TRANSACTION ISOLATION LEVEL SERIALIZABLE'], undefined)).toBe(true);
    expect(isSnapshotPerBlock(['BEGIN', 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ'], undefined)).toBe(
      true,
    );
    expect(
      isSnapshotPerBlock(
        ['BEGIN ISOLATION LEVEL SERIALIZABLE', 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED'],
        undefined,
      ),
    ).toBe(false);
    expect(isSnapshotPerBlock(['BEGIN'], "SET default_transaction_isolation = 'repeatable read'")).toBe(true);
    expect(isSnapshotPerBlock(['BEGIN READ WRITE'], 'read committed')).toBe(false);
    expect(isSnapshotPerBlock(['BEGIN ISOLATION LEVEL READ COMMITTED'], 'serializable')).toBe(false);
  });
});

describe('takeCut', () => {
  it('waits for a writer holding a shard before sending, and leaves the fence once every shard answered', async () => {
    const fence = new VisibilityFence(2, new FakeClock());
    const writer = await fence.enterWrite([1], 'tx1');
    const c = cut(fence);
    expect(c.sent).toEqual([]); // shard 1 is held: no snapshot may be taken yet
    writer.release();
    expect(c.sent).toEqual([CUT_SQL]);
    // While the snapshots are taken, a writer waits.
    let isWriterIn = false;
    const next = fence.enterWrite([0], 'tx2').then(() => (isWriterIn = true));
    await Promise.resolve();
    expect(isWriterIn).toBe(false);
    c.answer?.([]);
    await next;
    expect(isWriterIn).toBe(true);
    expect(c.result).toBeNull();
  });

  it('answers 40001 naming the writer when it cannot enter within the bound; nothing was sent', async () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    await fence.enterWrite([0, 1], 'tx9');
    const c = cut(fence);
    clock.advance(100);
    expect(c.sent).toEqual([]);
    expect(c.result?.code).toBe('40001');
    expect(c.result?.detail).toMatch(/shard 0 is held by cross-shard transaction tx9/);
  });

  it('fails the shards’ transactions (40001) when the bound ran out after the snapshots were sent', () => {
    const clock = new FakeClock();
    const fence = new VisibilityFence(2, clock);
    const c = cut(fence);
    expect(c.sent).toEqual([CUT_SQL]);
    clock.advance(100);
    expect(c.result).toBeUndefined(); // not answered before the shards are
    c.answer?.([]);
    expect(c.sent).toHaveLength(2);
    expect(c.sent[1]).toMatch(/RAISE EXCEPTION USING ERRCODE = '40001'/);
    c.answer?.([]);
    expect(c.result?.code).toBe('40001');
  });
});

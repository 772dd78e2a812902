// TransactionManager bookkeeping without shards: GIDs per writer, the decision made durable before committing, what
// SHOW TRANSACTIONS lists, the in-doubt count (also for a transaction held after a decision-log failure), counters,
// decide() refused while another live proxy holds this instance id, and the visibility fence held by committing
// transactions (the session's and recovery's) until they are finished; at_decision's phase 2 starting after the reply.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging/logger.js';
import {
  CommitRefusedError,
  TransactionManager,
  type CommitDecision,
  type DecisionRecorder,
} from '../../../src/txn/manager.js';
import type { ShardAccess } from '../../../src/backend/shard-access.js';
import { VisibilityFences } from '../../../src/txn/visibility-fence.js';

class MemoryLog implements DecisionRecorder {
  readonly commits: CommitDecision[] = [];
  readonly done: string[] = [];
  fail: Error | null = null;
  async appendCommit(record: CommitDecision): Promise<void> {
    if (this.fail !== null) throw this.fail;
    this.commits.push(record);
  }
  appendDone(txid: string): void {
    this.done.push(txid);
  }
  pendingCommits(): readonly CommitDecision[] {
    return this.commits.filter((c) => !this.done.includes(c.txid));
  }
}

const NO_SHARDS: ShardAccess = {
  shardedDatabases: () => [],
  shardCount: () => 0,
  users: () => [],
  serverUser: () => null,
  location: () => null,
  connect: () => Promise.reject(new Error('no shards in this test')),
};

function manager(log: DecisionRecorder): TransactionManager {
  return new TransactionManager({
    instanceId: 'unit',
    log,
    shards: NO_SHARDS,
    decisionSchema: 'shardgate',
    logger: silentLogger(),
    orphanTimeoutMs: 60_000,
    recoveryIntervalMs: 60_000,
  });
}

describe('TransactionManager', () => {
  it('gives each writer a GID, records the decision with them, and is done once every branch committed', async () => {
    const log = new MemoryLog();
    const m = manager(log);
    const tx = m.begin('app', 'alice', [0, 2], [1]);
    expect(tx.writers.map((b) => b.gid)).toEqual([`sg_unit_${tx.txid}_0`, `sg_unit_${tx.txid}_2`]);
    expect(tx.readers.map((b) => b.gid)).toEqual([null]);
    for (const b of tx.writers) tx.moveBranch(b, 'prepared');
    await m.decide(tx);
    expect(tx.state).toBe('committing');
    expect(log.commits[0]).toMatchObject({ txid: tx.txid, database: 'app', user: 'alice' });
    expect(log.commits[0].participants).toEqual(tx.writers.map((b) => ({ shard: b.shard, gid: b.gid })));
    expect(m.inDoubt).toBe(1);
    expect(m.transactions()[0]).toMatchObject({
      txid: tx.txid,
      state: 'committing',
      shards: '0:prepared,2:prepared,1:reader',
    });
    for (const b of tx.writers) tx.moveBranch(b, 'committed');
    m.settle(tx);
    expect(tx.state).toBe('done');
    expect(log.done).toEqual([tx.txid]);
    expect(m.transactions()).toEqual([]);
    expect(m.counters).toMatchObject({ prepared: 1, committed: 1, rolledBack: 0 });
  });

  it('stateless: the decision shard gets no GID, the others name it; decided() commits without the log', () => {
    const log = new MemoryLog();
    const m = manager(log);
    const tx = m.begin('app', 'alice', [0, 2], [1], 0);
    expect(tx.decision).toMatchObject({ shard: 0, gid: null, state: 'open' });
    expect(tx.writers.map((b) => b.gid)).toEqual([`sg_unit_${tx.txid}_2_d0`]);
    tx.moveBranch(tx.branchOn(2), 'prepared');
    m.decided(tx);
    expect(tx.state).toBe('committing');
    expect(tx.decision?.state).toBe('committed');
    expect(m.transactions()[0]).toMatchObject({ shards: '0:decision committed,2:prepared,1:reader' });
    tx.moveBranch(tx.branchOn(2), 'committed');
    m.settle(tx);
    expect(tx.state).toBe('done');
    expect(log.commits).toEqual([]);
    expect(log.done).toEqual([]);
    expect(m.counters).toMatchObject({ prepared: 1, committed: 1 });
    m.close();
  });

  it('rolls back (settles to aborted) when phase 1 failed everywhere it ran', () => {
    const m = manager(new MemoryLog());
    const tx = m.begin('app', 'alice', [0, 1], []);
    tx.moveBranch(tx.writers[0], 'rolled_back');
    tx.moveBranch(tx.writers[1], 'failed');
    m.settle(tx);
    expect(tx.state).toBe('aborted');
    expect(m.counters.rolledBack).toBe(1);
    expect(m.transactions()).toEqual([]);
  });

  it('lists a transaction held after a decision-log failure as in doubt, and keeps it', () => {
    const m = manager(new MemoryLog());
    const tx = m.begin('app', 'alice', [0, 1], []);
    m.holdInDoubt(tx, 'EIO');
    expect(m.inDoubt).toBe(1);
    expect(m.transactions()[0]).toMatchObject({
      state: 'in doubt (decision log failed)',
      lastError: 'decision log failed: EIO',
    });
  });

  it('rejects decide() when the log cannot record the decision (the caller then rolls back)', async () => {
    const log = new MemoryLog();
    log.fail = new Error('disk full');
    const m = manager(log);
    const tx = m.begin('app', 'alice', [0, 1], []);
    await expect(m.decide(tx)).rejects.toThrow('disk full');
    expect(tx.state).toBe('preparing');
  });

  it('at_decision: phase 2 starts in the same tick as the answer, after the promise jobs that write the reply', async () => {
    const events: string[] = [];
    const m = new TransactionManager({
      instanceId: 'unit',
      decisionSchema: 'shardgate',
      log: null,
      shards: {
        ...NO_SHARDS,
        shardCount: () => 2,
        connect: () => {
          events.push('COMMIT PREPARED');
          return Promise.reject(new Error('shard down in this test'));
        },
      },
      logger: silentLogger(),
      orphanTimeoutMs: 60_000,
      recoveryIntervalMs: 60_000,
      retryDelayMs: 60_000,
      fences: new VisibilityFences(),
    });
    const tx = m.begin('app', 'alice', [0, 1], [], 0);
    tx.moveBranch(tx.branchOn(1), 'prepared');
    m.decided(tx);
    m.continueAfterReply(tx);
    // The session answers the client a few promise jobs after continueAfterReply (commit-run.ts): that write first,
    // so the client's answer does not wait for phase 2's; phase 2 still before any timer or I/O of the next tick.
    let chain = Promise.resolve();
    for (let i = 0; i < 10; i++) chain = chain.then(() => undefined);
    void chain.then(() => events.push('reply'));
    setTimeout(() => events.push('timer'), 0);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(events).toEqual(['reply', 'COMMIT PREPARED', 'timer']);
    m.close();
  });
});

describe('TransactionManager commit refusal (another live proxy holds this instance id)', () => {
  it('rejects decide() with CommitRefusedError while refused, and decides again once the refusal is lifted', async () => {
    const log = new MemoryLog();
    const m = manager(log);
    m.refuseCommits('instance_id "unit" is in use by another live shardgate: shard 1 of database "app"');
    expect(m.refusal).toMatch(/shard 1/);
    const refused = m.begin('app', 'alice', [0, 1], []);
    const err = await m.decide(refused).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitRefusedError);
    expect((err as Error).message).toMatch(/two-phase commits are refused: instance_id "unit" is in use/);
    expect(refused.state).toBe('preparing'); // nothing decided: the caller rolls back
    expect(log.commits).toEqual([]);
    expect(m.counters.prepared).toBe(0);

    m.refuseCommits(null);
    expect(m.refusal).toBeNull();
    const accepted = m.begin('app', 'alice', [0, 1], []);
    await m.decide(accepted);
    expect(accepted.state).toBe('committing');
    expect(log.commits.map((c) => c.txid)).toEqual([accepted.txid]);
  });

  it('holds the visibility fence on the writers from holdVisibility until the transaction is finished', async () => {
    const fences = new VisibilityFences();
    const m = new TransactionManager({
      instanceId: 'unit',
      decisionSchema: 'shardgate',
      log: new MemoryLog(),
      shards: { ...NO_SHARDS, shardCount: () => 3 },
      logger: silentLogger(),
      orphanTimeoutMs: 60_000,
      recoveryIntervalMs: 60_000,
      fences,
    });
    const tx = m.begin('app', 'alice', [0, 2], [1]);
    for (const b of tx.writers) tx.moveBranch(b, 'prepared');
    await m.decide(tx);
    await m.holdVisibility(tx);
    const fence = fences.of('app', 3);
    expect(fence.holdersOf(0)).toEqual([tx.txid]);
    expect(fence.holdersOf(1)).toEqual([]); // a reader of the transaction: nothing to make visible there
    expect(fence.holdersOf(2)).toEqual([tx.txid]);
    for (const b of tx.writers) tx.moveBranch(b, 'committed');
    m.settle(tx);
    expect(fence.holdersOf(0)).toEqual([]);
    expect(fence.holdersOf(2)).toEqual([]);
  });

  it('recovery holds the fence for a decided transaction whose shards it cannot reach, until it is finished', async () => {
    const fences = new VisibilityFences();
    const log = new MemoryLog();
    log.commits.push({
      txid: 't1',
      database: 'app',
      user: 'alice',
      participants: [
        { shard: 0, gid: 'sg_unit_t1_0' },
        { shard: 1, gid: 'sg_unit_t1_1' },
      ],
      at: 0,
    });
    const m = new TransactionManager({
      instanceId: 'unit',
      decisionSchema: 'shardgate',
      log,
      shards: { ...NO_SHARDS, shardCount: () => 2 },
      logger: silentLogger(),
      orphanTimeoutMs: 60_000,
      recoveryIntervalMs: 60_000,
      retryDelayMs: 60_000,
      fences,
    });
    const report = await m.recover(true);
    expect(report.pending).toBe(1);
    const fence = fences.of('app', 2);
    expect(fence.holdersOf(0)).toEqual(['t1']);
    expect(fence.holdersOf(1)).toEqual(['t1']);
    // A reader of both shards waits (and, past its bound, is told which transaction holds it).
    let entered = false;
    const hold = fence.enterRead(
      [0, 1],
      0,
      () => (entered = true),
      () => undefined,
    );
    expect(entered).toBe(false);
    hold.release();
    m.close();
  });

  it('a recovery pass asked for while one runs waits for it and then runs its own (RECOVER never reports zeros)', async () => {
    // Pass 1's first connect hangs until released; every other connect fails at once.
    let release: (err: Error) => void = () => undefined;
    let connects = 0;
    const shards: ShardAccess = {
      ...NO_SHARDS,
      shardedDatabases: () => ['app'],
      shardCount: () => 2,
      users: () => ['alice'],
      connect: () => {
        connects++;
        if (connects === 1) return new Promise((_, reject) => (release = reject));
        return Promise.reject(new Error('shard down'));
      },
    };
    const m = new TransactionManager({
      instanceId: 'unit',
      decisionSchema: 'shardgate',
      log: new MemoryLog(),
      shards,
      logger: silentLogger(),
      orphanTimeoutMs: 60_000,
      recoveryIntervalMs: 60_000,
    });
    const first = m.recover(false);
    await new Promise((r) => setTimeout(r, 20));
    const byFirstPass = connects; // one per shard, in parallel
    expect(byFirstPass).toBeGreaterThan(0);
    let isSecondDone = false;
    const second = m.recover(false).then((report) => {
      isSecondDone = true;
      return report;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(isSecondDone).toBe(false); // not answered with an empty report while the first pass runs
    expect(connects).toBe(byFirstPass); // nor running beside it
    release(new Error('shard down'));
    await first;
    await second;
    expect(connects).toBeGreaterThan(byFirstPass); // the second pass went to the shards itself
  });
});

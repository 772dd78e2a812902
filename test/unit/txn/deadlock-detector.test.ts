// The wait-for graph's cycle finder: cycles of two and three proxy transactions, the youngest one chosen, outsiders
// on a cycle never chosen, no cycle in a plain chain of waits, and the re-check refusing a cycle that changed.
import { describe, expect, it } from 'vitest';
import {
  cycleStillHolds,
  findCycles,
  WaitGraphBuilder,
  type OutsiderNode,
  type TransactionNode,
} from '../../../src/txn/deadlock-detector.js';

function txn(sessionId: number, startedAtMs: number, statementSeq = 1): TransactionNode {
  return { kind: 'transaction', sessionId, transactionSeq: 1, statementSeq, startedAtMs };
}

function outsider(label: string): OutsiderNode {
  return { kind: 'outsider', label };
}

describe('findCycles', () => {
  it('finds a cycle of two transactions on two shards and picks the younger one as victim', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const g = new WaitGraphBuilder();
    g.edge(a, b, 1); // A waits on shard 1 for B
    g.edge(b, a, 0); // B waits on shard 0 for A
    const cycles = findCycles(g.build());
    expect(cycles).toHaveLength(1);
    expect(cycles[0].victim.sessionId).toBe(2);
    expect(cycles[0].victimWait).toEqual({ from: 't2', to: 't1', shard: 0 });
    expect(cycles[0].edges.map((e) => e.from)).toEqual(['t2', 't1']);
  });

  it('finds a cycle of three transactions and picks the youngest', () => {
    const a = txn(1, 300);
    const b = txn(2, 100);
    const c = txn(3, 200);
    const g = new WaitGraphBuilder();
    g.edge(a, b, 1);
    g.edge(b, c, 2);
    g.edge(c, a, 0);
    const [cycle, ...rest] = findCycles(g.build());
    expect(rest).toEqual([]);
    expect(cycle.victim.sessionId).toBe(1);
    expect(cycle.victimWait).toEqual({ from: 't1', to: 't2', shard: 1 });
    expect(cycle.edges.map((e) => `${e.from}>${e.to}@${e.shard}`)).toEqual(['t1>t2@1', 't2>t3@2', 't3>t1@0']);
  });

  it('reports no cycle for a chain of waits', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 1), txn(2, 2), 0);
    g.edge(txn(2, 2), txn(3, 3), 1);
    g.edge(txn(3, 3), outsider('h:1 pid 9'), 1);
    expect(findCycles(g.build())).toEqual([]);
  });

  it('never chooses an outsider on a cycle, even when it would be the youngest', () => {
    const a = txn(1, 100);
    const b = txn(2, 50);
    const o = outsider('127.0.0.1:5432 pid 4242');
    const g = new WaitGraphBuilder();
    g.edge(a, o, 0); // A waits on shard 0 for another client of the server
    g.edge(o, b, 0); // which waits for B there
    g.edge(b, a, 1); // B waits on shard 1 for A
    const [cycle] = findCycles(g.build());
    expect(cycle.victim.sessionId).toBe(1);
    expect(cycle.edges).toHaveLength(3);
  });

  it('leaves a cycle among outsiders alone (PostgreSQL breaks it on its server)', () => {
    const g = new WaitGraphBuilder();
    g.edge(outsider('x'), outsider('y'), 0);
    g.edge(outsider('y'), outsider('x'), 0);
    expect(findCycles(g.build())).toEqual([]);
  });

  it('breaks one cycle in each of two separate cycles', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 1), txn(2, 2), 0);
    g.edge(txn(2, 2), txn(1, 1), 1);
    g.edge(txn(3, 3), txn(4, 4), 0);
    g.edge(txn(4, 4), txn(3, 3), 1);
    expect(
      findCycles(g.build())
        .map((c) => c.victim.sessionId)
        .sort(),
    ).toEqual([2, 4]);
  });

  it('breaks ties in start time by session id, so every check picks the same victim', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(7, 10), txn(5, 10), 0);
    g.edge(txn(5, 10), txn(7, 10), 1);
    expect(findCycles(g.build())[0].victim.sessionId).toBe(7);
  });
});

describe('cycleStillHolds', () => {
  function twoCycle(bStatement: number) {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 100), txn(2, 200, bStatement), 1);
    g.edge(txn(2, 200, bStatement), txn(1, 100), 0);
    return g.build();
  }

  it('accepts the same cycle seen again', () => {
    const [cycle] = findCycles(twoCycle(1));
    expect(cycleStillHolds(cycle, twoCycle(1))).toBe(true);
  });

  it('refuses a cycle whose transaction moved on to another statement (a pid passed to the next transaction)', () => {
    const [cycle] = findCycles(twoCycle(1));
    expect(cycleStillHolds(cycle, twoCycle(2))).toBe(false);
  });

  it('refuses a cycle with a wait gone or moved to another shard', () => {
    const [cycle] = findCycles(twoCycle(1));
    const gone = new WaitGraphBuilder();
    gone.edge(txn(1, 100), txn(2, 200), 1);
    expect(cycleStillHolds(cycle, gone.build())).toBe(false);
    const moved = new WaitGraphBuilder();
    moved.edge(txn(1, 100), txn(2, 200), 1);
    moved.edge(txn(2, 200), txn(1, 100), 2);
    expect(cycleStillHolds(cycle, moved.build())).toBe(false);
  });
});

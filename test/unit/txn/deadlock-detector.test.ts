// The wait-for graph's knot finder (AND-OR model): lock cycles of two and three proxy transactions, the youngest one
// chosen, outsiders in a knot never chosen, no knot in a plain chain of waits; checkout (OR) waits closing a knot only
// when every holder of the pool is blocked in it; and the re-check refusing a knot that changed.
import { describe, expect, it } from 'vitest';
import {
  knotStillHolds,
  findKnots,
  WaitGraphBuilder,
  blockedNodes,
  type OutsiderNode,
  type TransactionNode,
} from '../../../src/txn/deadlock-detector.js';

function txn(sessionId: number, startedAtMs: number, statementSeq = 1): TransactionNode {
  return { kind: 'transaction', sessionId, transactionSeq: 1, statementSeq, startedAtMs };
}

function outsider(label: string): OutsiderNode {
  return { kind: 'outsider', label };
}

describe('findKnots', () => {
  it('finds a cycle of two transactions on two shards and picks the younger one as victim', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const g = new WaitGraphBuilder();
    g.edge(a, b, 1); // A waits on shard 1 for B
    g.edge(b, a, 0); // B waits on shard 0 for A
    const cycles = findKnots(g.build());
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
    const [cycle, ...rest] = findKnots(g.build());
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
    expect(findKnots(g.build())).toEqual([]);
  });

  it('never chooses an outsider on a cycle, even when it would be the youngest', () => {
    const a = txn(1, 100);
    const b = txn(2, 50);
    const o = outsider('127.0.0.1:5432 pid 4242');
    const g = new WaitGraphBuilder();
    g.edge(a, o, 0); // A waits on shard 0 for another client of the server
    g.edge(o, b, 0); // which waits for B there
    g.edge(b, a, 1); // B waits on shard 1 for A
    const [cycle] = findKnots(g.build());
    expect(cycle.victim.sessionId).toBe(1);
    expect(cycle.edges).toHaveLength(3);
  });

  it('leaves a cycle among outsiders alone (PostgreSQL breaks it on its server)', () => {
    const g = new WaitGraphBuilder();
    g.edge(outsider('x'), outsider('y'), 0);
    g.edge(outsider('y'), outsider('x'), 0);
    expect(findKnots(g.build())).toEqual([]);
  });

  it('breaks one cycle in each of two separate cycles', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 1), txn(2, 2), 0);
    g.edge(txn(2, 2), txn(1, 1), 1);
    g.edge(txn(3, 3), txn(4, 4), 0);
    g.edge(txn(4, 4), txn(3, 3), 1);
    expect(
      findKnots(g.build())
        .map((c) => c.victim.sessionId)
        .sort(),
    ).toEqual([2, 4]);
  });

  it('breaks ties in start time by session id, so every check picks the same victim', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(7, 10), txn(5, 10), 0);
    g.edge(txn(5, 10), txn(7, 10), 1);
    expect(findKnots(g.build())[0].victim.sessionId).toBe(7);
  });
});

describe('knotStillHolds (lock waits)', () => {
  function twoCycle(bStatement: number) {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 100), txn(2, 200, bStatement), 1);
    g.edge(txn(2, 200, bStatement), txn(1, 100), 0);
    return g.build();
  }

  it('accepts the same cycle seen again', () => {
    const [cycle] = findKnots(twoCycle(1));
    expect(knotStillHolds(cycle, twoCycle(1))).toBe(true);
  });

  it('refuses a cycle whose transaction moved on to another statement (a pid passed to the next transaction)', () => {
    const [cycle] = findKnots(twoCycle(1));
    expect(knotStillHolds(cycle, twoCycle(2))).toBe(false);
  });

  it('refuses a cycle with a wait gone or moved to another shard', () => {
    const [cycle] = findKnots(twoCycle(1));
    const gone = new WaitGraphBuilder();
    gone.edge(txn(1, 100), txn(2, 200), 1);
    expect(knotStillHolds(cycle, gone.build())).toBe(false);
    const moved = new WaitGraphBuilder();
    moved.edge(txn(1, 100), txn(2, 200), 1);
    moved.edge(txn(2, 200), txn(1, 100), 2);
    expect(knotStillHolds(cycle, moved.build())).toBe(false);
  });
});

describe('findKnots with checkout waits (OR-waits on a pool)', () => {
  it('finds a knot of two checkouts: each holds the only server of the pool the other waits on', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const g = new WaitGraphBuilder();
    g.group(a, [b], 1, 'pool 2'); // A holds shard 0's only server and waits for shard 1's, which B holds
    g.group(b, [a], 0, 'pool 1');
    const [knot, ...rest] = findKnots(g.build());
    expect(rest).toEqual([]);
    expect(knot.victim.sessionId).toBe(2);
    expect(knot.victimWait).toEqual({ from: 't2', to: 't1', shard: 0, pool: 'pool 1' });
    expect([...knot.members.keys()].sort()).toEqual(['t1', 't2']);
  });

  it('finds a knot mixing a lock wait and a checkout', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const g = new WaitGraphBuilder();
    g.group(a, [b], 1, 'pool 2'); // A waits for shard 1's server, which B holds
    g.edge(b, a, 0); // B waits on shard 0 for A's row lock
    const [knot] = findKnots(g.build());
    expect(knot.victim.sessionId).toBe(2);
    expect(knot.victimWait).toEqual({ from: 't2', to: 't1', shard: 0 });
    expect(knot.edges.map((e) => `${e.from}>${e.to}@${e.shard}${e.pool ? ` ${e.pool}` : ''}`)).toEqual([
      't2>t1@0',
      't1>t2@1 pool 2',
    ]);
  });

  it('finds no knot while one holder of the pool can still give its server back (a cycle is not enough)', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const c = txn(3, 300); // holds the pool's second server and waits for nothing
    const g = new WaitGraphBuilder();
    g.group(a, [b, c], 1, 'pool 2');
    g.edge(b, a, 0);
    g.node(c);
    const graph = g.build();
    expect(findKnots(graph)).toEqual([]);
    expect([...blockedNodes(graph)]).toEqual([]);
  });

  it('finds no knot when a holder waits on a lock that a free transaction holds', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const c = txn(3, 300);
    const g = new WaitGraphBuilder();
    g.group(a, [b, c], 1, 'pool 2');
    g.edge(b, a, 0);
    g.edge(c, txn(4, 400), 1); // C waits for D, which waits for nothing: C will go on and give its server back
    expect(findKnots(g.build())).toEqual([]);
  });

  it('finds the knot once every holder of the pool is blocked in it', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const c = txn(3, 300);
    const g = new WaitGraphBuilder();
    g.group(a, [b, c], 1, 'pool 2'); // both servers of shard 1 are held by B and C
    g.edge(b, a, 0);
    g.edge(c, a, 0); // both wait on shard 0 for A
    const [knot, ...rest] = findKnots(g.build());
    expect(rest).toEqual([]);
    expect(knot.victim.sessionId).toBe(3);
    expect([...knot.members.keys()].sort()).toEqual(['t1', 't2', 't3']);
  });

  it('never counts an outsider holding a server (a reset, a health check, a session-mode client) as blocked', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const g = new WaitGraphBuilder();
    g.group(a, [b, outsider('pool 2 server 9')], 1, 'pool 2');
    g.group(b, [a], 0, 'pool 1');
    expect(findKnots(g.build())).toEqual([]);
  });

  it('leaves a transaction waiting on a knot out of the victims, and breaks the knot', () => {
    const a = txn(1, 100);
    const b = txn(2, 200);
    const late = txn(3, 900); // youngest of all, but only waits on the knot: breaking the knot may free it
    const g = new WaitGraphBuilder();
    g.group(a, [b], 1, 'pool 2');
    g.group(b, [a], 0, 'pool 1');
    g.group(late, [a], 0, 'pool 1');
    const graph = g.build();
    expect([...blockedNodes(graph)].sort()).toEqual(['t1', 't2', 't3']);
    const knots = findKnots(graph);
    expect(knots.map((k) => k.victim.sessionId)).toEqual([2]);
  });

  it('does not add a checkout wait with no holder, nor one on a pool the waiter holds itself', () => {
    const g = new WaitGraphBuilder();
    g.group(txn(1, 1), [], 0, 'pool 1');
    g.group(txn(2, 2), [txn(2, 2), txn(3, 3)], 0, 'pool 1');
    expect(g.build().groups).toEqual([]);
  });
});

describe('knotStillHolds (checkout waits)', () => {
  function poolKnot(bStatement: number, isCFree = false) {
    const g = new WaitGraphBuilder();
    g.group(txn(1, 100), [txn(2, 200, bStatement)], 1, 'pool 2');
    g.group(txn(2, 200, bStatement), isCFree ? [txn(1, 100), txn(3, 300)] : [txn(1, 100)], 0, 'pool 1');
    return g.build();
  }

  it('accepts the same knot seen again', () => {
    const [knot] = findKnots(poolKnot(1));
    expect(knot.victimWait.pool).toBe('pool 1');
    expect(knotStillHolds(knot, poolKnot(1))).toBe(true);
  });

  it('refuses it when the victim is on another checkout or statement', () => {
    const [knot] = findKnots(poolKnot(1));
    expect(knotStillHolds(knot, poolKnot(2))).toBe(false);
  });

  it('refuses it when a free holder joined the pool the victim waits on', () => {
    const [knot] = findKnots(poolKnot(1));
    expect(knotStillHolds(knot, poolKnot(1, true))).toBe(false);
  });
});

describe('knots through a commit (a transaction past its decision cannot roll back)', () => {
  /** A transaction in its commit: `step` numbers the commit's statement it waits in; `canBeVictim` as its commit says. */
  function committing(
    sessionId: number,
    startedAtMs: number,
    step: number,
    canBeVictim: boolean,
  ): TransactionNode {
    return { ...txn(sessionId, startedAtMs), commitStepSeq: step, canBeVictim };
  }

  it('cancels the youngest when it is a commit still in phase 1', () => {
    const g = new WaitGraphBuilder();
    g.edge(txn(1, 100), committing(2, 200, 7, true), 0);
    g.edge(committing(2, 200, 7, true), txn(1, 100), 1);
    const [knot] = findKnots(g.build());
    expect(knot.victim.sessionId).toBe(2);
    expect(knot.victimWait).toEqual({ from: 't2', to: 't1', shard: 1 });
  });

  it('picks the youngest of the others when the youngest is past its decision', () => {
    const g = new WaitGraphBuilder();
    const decided = committing(3, 300, 7, false);
    g.edge(txn(1, 100), txn(2, 200), 0);
    g.edge(txn(2, 200), decided, 1);
    g.edge(decided, txn(1, 100), 2);
    const [knot, ...rest] = findKnots(g.build());
    expect(rest).toEqual([]);
    expect(knot.victim.sessionId).toBe(2);
    expect(knot.victimWait).toEqual({ from: 't2', to: 't3', shard: 1 });
  });

  it('breaks no knot whose every transaction is past its decision', () => {
    const g = new WaitGraphBuilder();
    g.edge(committing(1, 100, 5, false), committing(2, 200, 7, false), 0);
    g.edge(committing(2, 200, 7, false), committing(1, 100, 5, false), 1);
    expect(findKnots(g.build())).toEqual([]);
  });

  it('refuses a knot seen again once its victim moved to another step of its commit, or past its decision', () => {
    const build = (victim: TransactionNode) => {
      const g = new WaitGraphBuilder();
      g.edge(txn(1, 100), victim, 0);
      g.edge(victim, txn(1, 100), 1);
      return g.build();
    };
    const [knot] = findKnots(build(committing(2, 200, 7, true)));
    expect(knotStillHolds(knot, build(committing(2, 200, 7, true)))).toBe(true);
    expect(knotStillHolds(knot, build(committing(2, 200, 8, true)))).toBe(false);
    expect(knotStillHolds(knot, build(committing(2, 200, 7, false)))).toBe(false);
  });
});

// The pure half of distributed deadlock detection: the wait-for graph between the proxy's transactions (and the
// backends that belong to none of them), its cycles, the victim of a cycle (the youngest proxy transaction in it, as
// Citus chooses), and the re-check that a cycle seen once still holds with the same transactions on the same
// statements before anything is cancelled. No sockets, timers or logging here (deadlock-watch.ts does the asking).

/** A proxy transaction as one snapshot saw it: which session, which transaction and statement it was on. */
export interface TransactionNode {
  readonly kind: 'transaction';
  /** The client session's id. */
  readonly sessionId: number;
  /** Counts the session's transactions and requests: a change means the wait seen is not the one seen before. */
  readonly transactionSeq: number;
  readonly statementSeq: number;
  /** When its transaction started in the proxy (ms, any monotonic clock): the largest is the youngest. */
  readonly startedAtMs: number;
}

/** A backend no proxy transaction holds (another client of the server, another proxy), or a prepared transaction. */
export interface OutsiderNode {
  readonly kind: 'outsider';
  /** `host:port pid N`, or `gid G` for a prepared transaction (pid 0 in pg_blocking_pids). */
  readonly label: string;
}

export type WaitNode = TransactionNode | OutsiderNode;

/** `from` waits on `shard` for a lock `to` holds (or is queued ahead for). */
export interface WaitEdge {
  readonly from: string;
  readonly to: string;
  readonly shard: number;
}

export interface WaitGraph {
  /** By key: `t<sessionId>` for proxy transactions, `o<label>` for outsiders (see nodeKey). */
  readonly nodes: ReadonlyMap<string, WaitNode>;
  readonly edges: readonly WaitEdge[];
}

/** The key of a node in a WaitGraph. */
export function nodeKey(node: WaitNode): string {
  return node.kind === 'transaction' ? `t${node.sessionId}` : `o${node.label}`;
}

/** A cycle of waits, `edges[i].to === edges[i + 1].from`, the last one back to the first's `from`. */
export interface WaitCycle {
  readonly edges: readonly WaitEdge[];
  /** The proxy transaction to cancel: the youngest in the cycle. */
  readonly victim: TransactionNode;
  /** The victim's own wait in the cycle (where its statement is to be cancelled). */
  readonly victimWait: WaitEdge;
  /** Each waiter of the cycle as this snapshot saw it (by key). */
  readonly members: ReadonlyMap<string, WaitNode>;
}

/** Builds a WaitGraph edge by edge (duplicate edges are kept once). */
export class WaitGraphBuilder {
  private readonly nodes = new Map<string, WaitNode>();
  private readonly edges: WaitEdge[] = [];
  private readonly seen = new Set<string>();

  /** Adds `node` (the first one given for a key stays) and returns its key. */
  node(node: WaitNode): string {
    const key = nodeKey(node);
    if (!this.nodes.has(key)) this.nodes.set(key, node);
    return key;
  }

  edge(from: WaitNode, to: WaitNode, shard: number): void {
    const edge = { from: this.node(from), to: this.node(to), shard };
    const id = `${edge.from}\u0000${edge.to}\u0000${shard}`;
    if (edge.from === edge.to || this.seen.has(id)) return;
    this.seen.add(id);
    this.edges.push(edge);
  }

  build(): WaitGraph {
    return { nodes: this.nodes, edges: this.edges };
  }
}

/**
 * The cycles to break: for each strongly connected part of the graph that holds a proxy transaction, one cycle through
 * its youngest proxy transaction (every member of such a part lies on some cycle). Outsiders may be on a cycle
 * (another client of a shard waiting between two proxy transactions) but are never its victim; a part without proxy
 * transactions is not the proxy's to break (PostgreSQL breaks a cycle inside one server itself).
 */
export function findCycles(graph: WaitGraph): WaitCycle[] {
  const out = new Map<string, WaitEdge[]>();
  for (const e of graph.edges) {
    const list = out.get(e.from);
    if (list === undefined) out.set(e.from, [e]);
    else list.push(e);
  }
  const cycles: WaitCycle[] = [];
  for (const part of stronglyConnected([...graph.nodes.keys()], out)) {
    if (part.size < 2) continue;
    let victim: TransactionNode | null = null;
    for (const key of part) {
      const node = graph.nodes.get(key);
      if (node?.kind === 'transaction' && (victim === null || isYounger(node, victim))) victim = node;
    }
    if (victim === null) continue;
    const edges = cycleThrough(nodeKey(victim), part, out);
    if (edges === null) continue;
    const members = new Map<string, WaitNode>();
    for (const e of edges) members.set(e.from, graph.nodes.get(e.from) as WaitNode);
    cycles.push({ edges, victim, victimWait: edges[0], members });
  }
  return cycles;
}

function isYounger(a: TransactionNode, b: TransactionNode): boolean {
  return a.startedAtMs > b.startedAtMs || (a.startedAtMs === b.startedAtMs && a.sessionId > b.sessionId);
}

/** Tarjan's algorithm (iterative): the strongly connected components. */
function stronglyConnected(keys: readonly string[], out: ReadonlyMap<string, WaitEdge[]>): Set<string>[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const parts: Set<string>[] = [];
  let next = 0;
  for (const root of keys) {
    if (index.has(root)) continue;
    const work: { key: string; edge: number }[] = [{ key: root, edge: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work[work.length - 1];
      const edges = out.get(top.key) ?? [];
      if (top.edge < edges.length) {
        const to = edges[top.edge++].to;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push({ key: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(top.key, Math.min(low.get(top.key) as number, index.get(to) as number));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].key;
        low.set(parent, Math.min(low.get(parent) as number, low.get(top.key) as number));
      }
      if (low.get(top.key) === index.get(top.key)) {
        const part = new Set<string>();
        let key: string;
        do {
          key = stack.pop() as string;
          onStack.delete(key);
          part.add(key);
        } while (key !== top.key);
        parts.push(part);
      }
    }
  }
  return parts;
}

/** A shortest cycle from `start` back to it inside `part` (breadth first), as its edges in order. */
function cycleThrough(
  start: string,
  part: ReadonlySet<string>,
  out: ReadonlyMap<string, WaitEdge[]>,
): WaitEdge[] | null {
  const via = new Map<string, WaitEdge>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    for (const e of out.get(queue[i]) ?? []) {
      if (!part.has(e.to)) continue;
      if (e.to === start) {
        const edges = [e];
        for (let at = e.from; at !== start;) {
          const back = via.get(at) as WaitEdge;
          edges.unshift(back);
          at = back.from;
        }
        return edges;
      }
      if (via.has(e.to)) continue;
      via.set(e.to, e);
      queue.push(e.to);
    }
  }
  return null;
}

/**
 * Whether `cycle` (found in an earlier snapshot) still holds in `graph`: every wait of it is there again, on the same
 * shard, and every proxy transaction in it is the same transaction on the same statement (session ids are never
 * reused; a backend pid passed to the next transaction in transaction mode changes the statement counter).
 */
export function cycleStillHolds(cycle: WaitCycle, graph: WaitGraph): boolean {
  for (const e of cycle.edges) {
    if (!graph.edges.some((g) => g.from === e.from && g.to === e.to && g.shard === e.shard)) return false;
  }
  for (const [key, before] of cycle.members) {
    const now = graph.nodes.get(key);
    if (now === undefined || !isSameNode(now, before)) return false;
  }
  return true;
}

function isSameNode(a: WaitNode, b: WaitNode): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'outsider') return a.label === (b as OutsiderNode).label;
  const t = b as TransactionNode;
  return (
    a.sessionId === t.sessionId && a.transactionSeq === t.transactionSeq && a.statementSeq === t.statementSeq
  );
}

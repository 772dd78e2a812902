// The pure half of distributed deadlock detection: the wait-for graph between the proxy's transactions (and the
// backends and holders that belong to none of them) in the AND-OR model — a lock wait is an AND-wait (the waiter needs
// every blocker to go), a pool checkout an OR-wait (any one holder of the pool's servers giving one back will do) —,
// its knots (the waiters that can never go on, found by graph reduction), the victim of a knot (the youngest proxy
// transaction in it, as Citus chooses, that may be cancelled: never one whose commit is past its decision), and the re-check that a knot seen once still holds with the same transactions
// on the same statements before anything is cancelled. No sockets, timers or logging here (deadlock-watch.ts asks).
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
  /** The step of its commit it waits in (commit-steps.ts; a change means another wait); absent or 0: not committing. */
  readonly commitStepSeq?: number;
  /** False while its commit is past its decision (it cannot roll back): never a victim. Absent: true. */
  readonly canBeVictim?: boolean;
}

/** A backend no proxy transaction holds (another client of the server, another proxy), or a prepared transaction. */
export interface OutsiderNode {
  readonly kind: 'outsider';
  /** `host:port pid N`, or `gid G` for a prepared transaction (pid 0 in pg_blocking_pids). */
  readonly label: string;
}

export type WaitNode = TransactionNode | OutsiderNode;

/**
 * `from` waits on `shard` for a lock `to` holds (or is queued ahead for); or, with `pool`, `from` waits to check a
 * server out of that pool and `to` holds one of its servers (one edge of a WaitGroup, as a knot's DETAIL names it).
 */
export interface WaitEdge {
  readonly from: string;
  readonly to: string;
  readonly shard: number;
  /** The pool waited on (a checkout wait), absent for a lock wait. */
  readonly pool?: string;
}

/** `from` waits to check a server of `shard` out of `pool`, which any one of `to` (its servers' holders) may give back. */
export interface WaitGroup {
  readonly from: string;
  readonly to: readonly string[];
  readonly shard: number;
  readonly pool: string;
}

export interface WaitGraph {
  /** By key: `t<sessionId>` for proxy transactions, `o<label>` for outsiders (see nodeKey). */
  readonly nodes: ReadonlyMap<string, WaitNode>;
  /** AND-waits: lock waits, each blocker one edge. */
  readonly edges: readonly WaitEdge[];
  /** OR-waits: pool checkouts. */
  readonly groups: readonly WaitGroup[];
}

/** The key of a node in a WaitGraph. */
export function nodeKey(node: WaitNode): string {
  return node.kind === 'transaction' ? `t${node.sessionId}` : `o${node.label}`;
}

/**
 * A knot: waiters none of which can ever go on, every wait of each leading back into the knot (a terminal strongly
 * connected part of the waits that cannot be met). `edges` is a cycle through the victim inside it,
 * `edges[i].to === edges[i + 1].from`, the last one back to the first's `from` (what the DETAIL names).
 */
export interface WaitKnot {
  readonly edges: readonly WaitEdge[];
  /** The proxy transaction to cancel: the youngest in the knot that may be cancelled. */
  readonly victim: TransactionNode;
  /** The victim's own wait in the knot: a lock wait (cancel its statement on that shard) or a checkout (`pool`). */
  readonly victimWait: WaitEdge;
  /** Every node of the knot as this snapshot saw it (by key). */
  readonly members: ReadonlyMap<string, WaitNode>;
}

/** Builds a WaitGraph wait by wait (duplicate edges are kept once). */
export class WaitGraphBuilder {
  private readonly nodes = new Map<string, WaitNode>();
  private readonly edges: WaitEdge[] = [];
  private readonly groups: WaitGroup[] = [];
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

  /**
   * `from` waits for a server of `pool` (on `shard`) that any one of `holders` may give back. Not added when there is
   * no holder, or `from` is one of them: that is no wait on others (and an empty OR-wait could never be met).
   */
  group(from: WaitNode, holders: readonly WaitNode[], shard: number, pool: string): void {
    const key = this.node(from);
    const to = [...new Set(holders.map((h) => this.node(h)))];
    if (to.length === 0 || to.includes(key)) return;
    this.groups.push({ from: key, to, shard, pool });
  }

  build(): WaitGraph {
    return { nodes: this.nodes, edges: this.edges, groups: this.groups };
  }
}

/**
 * The waiters that can never go on (AND-OR graph reduction): a node with no wait is free; a waiter is freed once each
 * of its lock waits is on a free node and each of its checkouts has a free holder; what is never freed is blocked.
 * Only waits that were seen count: a node whose waits are unknown is free, so the answer errs towards "no deadlock".
 */
export function blockedNodes(graph: WaitGraph): Set<string> {
  const terms = new Map<string, (readonly string[])[]>();
  const add = (from: string, term: readonly string[]): void => {
    const list = terms.get(from);
    if (list === undefined) terms.set(from, [term]);
    else list.push(term);
  };
  for (const e of graph.edges) add(e.from, [e.to]);
  for (const g of graph.groups) add(g.from, g.to);
  const blocked = new Set(terms.keys());
  for (let isChanged = true; isChanged;) {
    isChanged = false;
    for (const key of blocked) {
      const isFreed = (terms.get(key) as (readonly string[])[]).every((term) =>
        term.some((to) => !blocked.has(to)),
      );
      if (isFreed) {
        blocked.delete(key);
        isChanged = true;
      }
    }
  }
  return blocked;
}

/**
 * The knots to break: among the blocked nodes, the waits that can never be met (a lock wait on a blocked node; a
 * checkout whose every holder is blocked, as one edge per holder) form a graph in which every blocked node has a way
 * out; each of its terminal strongly connected parts (nothing leads out of it) that holds a proxy transaction is a
 * knot, broken by cancelling its youngest proxy transaction. Outsiders may be in a knot (another client of a shard
 * waiting between two proxy transactions) but are never its victim; a knot without proxy transactions is not the
 * proxy's to break (PostgreSQL breaks a cycle inside one server itself). Blocked nodes upstream of a knot are not
 * cancelled: breaking the knot may free them (the next check sees). A transaction whose commit is past its decision
 * (canBeVictim false) is never the victim: the youngest of the others is; a knot of only such transactions and
 * outsiders is not broken (it ends at the shards' lock_timeout, as before).
 */
export function findKnots(graph: WaitGraph): WaitKnot[] {
  const blocked = blockedNodes(graph);
  const out = new Map<string, WaitEdge[]>();
  const push = (e: WaitEdge): void => {
    const list = out.get(e.from);
    if (list === undefined) out.set(e.from, [e]);
    else list.push(e);
  };
  for (const e of graph.edges) if (blocked.has(e.from) && blocked.has(e.to)) push(e);
  for (const g of graph.groups) {
    if (!blocked.has(g.from) || !g.to.every((to) => blocked.has(to))) continue;
    for (const to of g.to) push({ from: g.from, to, shard: g.shard, pool: g.pool });
  }
  const knots: WaitKnot[] = [];
  for (const part of stronglyConnected([...blocked], out)) {
    if (part.size < 2) continue;
    const isTerminal = [...part].every((key) => (out.get(key) ?? []).every((e) => part.has(e.to)));
    if (!isTerminal) continue;
    let victim: TransactionNode | null = null;
    for (const key of part) {
      const node = graph.nodes.get(key);
      if (node?.kind !== 'transaction' || node.canBeVictim === false) continue;
      if (victim === null || isYounger(node, victim)) victim = node;
    }
    if (victim === null) continue;
    const edges = cycleThrough(nodeKey(victim), part, out);
    if (edges === null) continue;
    const members = new Map<string, WaitNode>();
    for (const key of part) members.set(key, graph.nodes.get(key) as WaitNode);
    knots.push({ edges, victim, victimWait: edges[0], members });
  }
  return knots;
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
 * Whether `knot` (found in an earlier snapshot) still holds in `graph`: every node of it is blocked there again, every
 * proxy transaction in it is the same transaction on the same statement (session ids are never reused; a backend pid
 * passed to the next transaction in transaction mode, or a new checkout, changes the statement counter), and the
 * victim still waits where it is to be cancelled (the same shard, or the same pool) and may still be cancelled.
 */
export function knotStillHolds(knot: WaitKnot, graph: WaitGraph): boolean {
  const blocked = blockedNodes(graph);
  for (const [key, before] of knot.members) {
    const now = graph.nodes.get(key);
    if (now === undefined || !blocked.has(key) || !isSameNode(now, before)) return false;
    if (key === nodeKey(knot.victim) && now.kind === 'transaction' && now.canBeVictim === false) return false;
  }
  const wait = knot.victimWait;
  if (wait.pool !== undefined)
    return graph.groups.some((g) => g.from === wait.from && g.pool === wait.pool && g.shard === wait.shard);
  return graph.edges.some((e) => e.from === wait.from && e.to === wait.to && e.shard === wait.shard);
}

function isSameNode(a: WaitNode, b: WaitNode): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'outsider') return a.label === (b as OutsiderNode).label;
  const t = b as TransactionNode;
  return (
    a.sessionId === t.sessionId &&
    a.transactionSeq === t.transactionSeq &&
    a.statementSeq === t.statementSeq &&
    (a.commitStepSeq ?? 0) === (t.commitStepSeq ?? 0)
  );
}

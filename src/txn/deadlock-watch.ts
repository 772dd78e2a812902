// Distributed deadlock detection, the part with sockets and timers: the registry of sharded sessions (WatchedSession),
// a timer armed only while some request (or a step of a commit: commit-steps.ts) is in flight or waits for a pool's
// server (it fires `deadlock_timeout` after the oldest one started), a check when a transaction holding servers on 2+ shards has waited that long, or one
// holding a server has waited that long for another shard's — each PostgreSQL server the waiting sessions hold a
// server on is asked who waits for whom (lock-waits.ts, on connections of the check's own, never a client's), backend
// pids are mapped to the proxy transactions holding them, checkouts queued in an exhausted pool become waits on the
// holders of its servers, and the wait-for graph's knots (deadlock-detector.ts) are asked for again before anything
// is cancelled. A knot's youngest transaction is cancelled where it waits: on a shard, its statement (the 57014
// rewritten into 40P01 "deadlock detected" for that one statement); in a pool, its checkout (failed with 40P01, its
// transaction rolled back and its servers given back: WatchedSessionSource.failCheckout).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ServerConnection } from '../backend/server-connection.js';
import { runQuery } from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { DurationHistogram } from '../stats/duration-histogram.js';
import {
  findKnots,
  knotStillHolds,
  WaitGraphBuilder,
  type TransactionNode,
  type WaitEdge,
  type WaitGraph,
  type WaitKnot,
  type WaitNode,
} from './deadlock-detector.js';
import { LOCK_WAITS_SQL, readLockWaits, type LockWait } from './lock-waits.js';
import { WatchedSession, type WatchedSessionSource } from './watched-session.js';

/** What the check needs of the configuration (read at each use, so a reload takes effect). */
export interface DeadlockWatchConfig {
  /** 0: no detection. */
  deadlockTimeoutMs: number;
  connectTimeoutMs: number;
}

/** Counters for the metrics endpoint. */
export interface DeadlockStats {
  checks: number;
  deadlocks: number;
  readonly checkTime: DurationHistogram;
}

/** The error part of the SQLSTATE field of a query-cancel ErrorResponse (the one the rewrite looks for). */
const CANCELED_MARKER = Buffer.from(`C${SqlState.QueryCanceled}\u0000`, 'latin1');

/** A backend on a server: `host:port/pid`. */
function backendKey(host: string, port: number, pid: number): string {
  return `${host}:${port}/${pid}`;
}

/** Where a backend pid belongs in the proxy: the session holding it, and on which shard. */
interface HeldBackend {
  readonly session: WatchedSession;
  readonly shard: number;
}

export class DeadlockWatch {
  private readonly sessions = new Set<WatchedSession>();
  private readonly config: () => DeadlockWatchConfig;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private isChecking = false;
  /** Connections of the check's own, by `host:port` (kept while waits last, closed when the timer stops). */
  private readonly connections = new Map<string, ServerConnection>();
  /** Sessions cancelled as deadlock victims, with the request cancelled: never cancelled twice. */
  private readonly cancelled = new Map<WatchedSession, number>();
  private isClosed = false;
  readonly stats: DeadlockStats = { checks: 0, deadlocks: 0, checkTime: new DurationHistogram() };

  constructor(config: () => DeadlockWatchConfig, log: Logger) {
    this.config = config;
    this.log = log;
  }

  /** A sharded session to watch (until its `close`). */
  watch(source: WatchedSessionSource): WatchedSession {
    const session = new WatchedSession(source, () => this.onRequest());
    this.sessions.add(session);
    return session;
  }

  /** The session has gone. */
  unwatch(session: WatchedSession): void {
    this.sessions.delete(session);
  }

  /** Stop the timer and close the check's connections (proxy shutdown). */
  close(): void {
    this.isClosed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.closeConnections();
  }

  /** A request started somewhere: make sure the timer runs (nothing else on the request path). */
  private onRequest(): void {
    if (this.timer !== null || this.isChecking || this.isClosed) return;
    const timeoutMs = this.config().deadlockTimeoutMs;
    if (timeoutMs > 0) this.timer = setTimeout(() => this.onTimer(), timeoutMs);
  }

  /**
   * Arm the timer for the oldest request in flight or checkout waiting, or stop (and close the check's connections)
   * when there is none.
   */
  private rearm(): void {
    const timeoutMs = this.config().deadlockTimeoutMs;
    let oldest = Infinity;
    for (const s of this.sessions) {
      const waitingSinceMs = s.waitingSinceMs();
      if (waitingSinceMs !== 0 && waitingSinceMs < oldest) oldest = waitingSinceMs;
      if (s.checkoutSinceMs !== 0 && s.checkoutSinceMs < oldest) oldest = s.checkoutSinceMs;
    }
    if (oldest === Infinity || timeoutMs <= 0 || this.isClosed) {
      this.closeConnections();
      this.cancelled.clear();
      return;
    }
    // At least a tenth of the timeout apart: one query per server per check while waits last, not a busy loop.
    const delayMs = Math.max(oldest + timeoutMs - performance.now(), timeoutMs / 10);
    this.timer = setTimeout(() => this.onTimer(), delayMs);
  }

  private onTimer(): void {
    this.timer = null;
    this.isChecking = true;
    this.check()
      .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'deadlock check failed'))
      .finally(() => {
        this.isChecking = false;
        this.rearm();
      });
  }

  /**
   * By database, the sessions that may be in a knot: a transaction holding servers on 2+ shards whose request (or a
   * step of its commit) has waited deadlock_timeout, or one holding a server whose checkout has waited that long.
   */
  private candidates(): Map<string, WatchedSession[]> {
    const timeoutMs = this.config().deadlockTimeoutMs;
    const now = performance.now();
    const byDatabase = new Map<string, WatchedSession[]>();
    for (const s of this.sessions) {
      const waitingSinceMs = s.waitingSinceMs();
      const isLockCandidate =
        waitingSinceMs !== 0 && now - waitingSinceMs >= timeoutMs && s.heldShardCount() >= 2;
      const isCheckoutCandidate =
        s.checkoutSinceMs !== 0 &&
        now - s.checkoutSinceMs >= timeoutMs &&
        s.heldShardCount() >= 1 &&
        s.queuedCheckouts().length > 0;
      if (!isLockCandidate && !isCheckoutCandidate) continue;
      const list = byDatabase.get(s.database);
      if (list === undefined) byDatabase.set(s.database, [s]);
      else list.push(s);
    }
    return byDatabase;
  }

  private async check(): Promise<void> {
    const byDatabase = this.candidates();
    if (byDatabase.size === 0) {
      this.closeConnections(); // requests run, none waits long: the check's connections are not needed now
      return;
    }
    const startMs = performance.now();
    this.stats.checks++;
    try {
      for (const [database, candidates] of byDatabase) await this.checkDatabase(database, candidates);
    } finally {
      this.stats.checkTime.record(performance.now() - startMs);
    }
  }

  private async checkDatabase(database: string, candidates: readonly WatchedSession[]): Promise<void> {
    const first = await this.snapshot(database);
    this.log.debug(
      { database, candidates: candidates.map((c) => c.id), edges: first.edges, checkouts: first.groups },
      'deadlock check: waits seen',
    );
    for (const [s, seq] of this.cancelled)
      if (s.statementSeq !== seq || !this.sessions.has(s)) this.cancelled.delete(s);
    const cancelledIds = new Set([...this.cancelled.keys()].map((s) => s.id));
    const knots = findKnots(first).filter((k) => !cancelledIds.has(k.victim.sessionId));
    if (knots.length === 0) return;
    // The servers were asked at different moments and a pid may have passed to another transaction since: ask again.
    const second = await this.snapshot(database);
    for (const knot of knots) {
      if (knotStillHolds(knot, second)) this.breakKnot(knot);
    }
  }

  /**
   * The wait-for graph of `database`'s sessions: every server a session in flight or waiting for a checkout holds a
   * connection on is asked for its lock waits (pg_locks spans the whole server, so one query per server); then, at
   * one moment, the checkouts queued in exhausted pools. A session that started another request or checkout while
   * the servers answered is left out (its waits may belong to either).
   */
  private async snapshot(database: string): Promise<WaitGraph> {
    const before = new Map<WatchedSession, string>();
    const targets = new Map<string, ServerConnection>();
    for (const s of this.sessions) {
      if (s.database !== database) continue;
      before.set(s, requestOf(s));
      if (s.waitingSinceMs() === 0 && s.checkoutSinceMs === 0) continue; // idle: it waits for nothing
      for (const server of s.servers()) {
        if (server === null) continue;
        const where = `${server.address.host}:${server.address.port}`;
        if (!targets.has(where)) targets.set(where, server);
      }
    }
    const answers = await Promise.all(
      [...targets].map(async ([where, server]) => ({ where, waits: await this.askWaits(where, server) })),
    );
    const held = new Map<string, HeldBackend>();
    /** Prepared transactions by GID that a commit in flight prepared: its session's. */
    const prepared = new Map<string, HeldBackend>();
    const heldBy = new Map<ServerConnection, WatchedSession>();
    const nodes = new Map<WatchedSession, TransactionNode>();
    for (const [s, seq] of before) {
      s.servers().forEach((server, shard) => {
        if (server === null) return;
        held.set(backendKey(server.address.host, server.address.port, server.backendPid), {
          session: s,
          shard,
        });
        heldBy.set(server, s);
      });
      for (const [gid, shard] of s.preparedBranches()) prepared.set(gid, { session: s, shard });
      if (s.checkoutSinceMs !== 0) {
        for (const server of s.serversInCheckout()) {
          held.set(backendKey(server.address.host, server.address.port, server.backendPid), {
            session: s,
            shard: server.address.shard,
          });
          heldBy.set(server, s);
        }
      }
      if (!this.sessions.has(s) || requestOf(s) !== seq) continue; // its waits are left out (addWait)
      nodes.set(s, {
        kind: 'transaction',
        sessionId: s.id,
        transactionSeq: s.transactionSeq,
        statementSeq: s.statementSeq,
        startedAtMs: s.startedAtMs,
        commitStepSeq: s.commitStepSeq(),
        canBeVictim: s.canBeVictim(),
      });
    }
    const graph = new WaitGraphBuilder();
    for (const { where, waits } of answers) {
      if (waits === null) continue;
      for (const w of waits) addWait(graph, where, w, held, prepared, nodes);
    }
    for (const [s, node] of nodes) addCheckouts(graph, s, node, heldBy, nodes);
    return graph.build();
  }

  /** The lock waits of the server at `where` (null: it could not be asked; logged). */
  private async askWaits(where: string, like: ServerConnection): Promise<LockWait[] | null> {
    let conn = this.connections.get(where);
    if (conn === undefined || conn.isClosed) {
      conn = new ServerConnection({ ...like.address });
      try {
        await conn.connect(this.config().connectTimeoutMs, { application_name: 'shardgate-deadlock-check' });
      } catch (err) {
        this.log.warn({ server: where, err: (err as Error).message }, 'deadlock check cannot reach a server');
        return null;
      }
      this.connections.set(where, conn);
    }
    const waits = readLockWaits(await runQuery(conn, LOCK_WAITS_SQL));
    if (waits === null) {
      this.log.warn({ server: where }, 'deadlock check query failed');
      conn.terminate('deadlock check query failed');
      this.connections.delete(where);
    }
    return waits;
  }

  /**
   * Cancel the knot's youngest transaction where it waits — its statement on a shard, or its checkout in a pool — if
   * every transaction of the knot is still waiting on the request it was seen with.
   */
  private breakKnot(knot: WaitKnot): void {
    const victim = knot.victim;
    const byKey = new Map([...this.sessions].map((s) => [`t${s.id}`, s]));
    // A proxy transaction of the knot that finished its request means the knot was broken some other way
    // (lock_timeout, checkout_timeout, a client's cancel): nothing is cancelled.
    for (const [key, node] of knot.members) {
      if (node.kind !== 'transaction') continue;
      const s = byKey.get(key);
      if (s === undefined || s.statementSeq !== node.statementSeq) return;
      if (s.commitStepSeq() !== (node.commitStepSeq ?? 0)) return;
      if (s.waitingSinceMs() === 0 && s.checkoutSinceMs === 0) return;
    }
    const session = byKey.get(`t${victim.sessionId}`) as WatchedSession;
    const wait = knot.victimWait;
    const detail = knot.edges.map(describeEdge).join('; ');
    const error = new PgError(
      'ERROR',
      SqlState.DeadlockDetected,
      'deadlock detected',
      `${detail}.`,
      "See the proxy's log for query details.",
    );
    const logLine = {
      database: session.database,
      victim: victim.sessionId,
      shard: wait.shard,
      ...(wait.pool !== undefined ? { pool: wait.pool } : {}),
      cycle: knot.edges.map((e) => ({
        waiter: describe(e.from),
        shard: e.shard,
        ...(e.pool !== undefined ? { checkout: e.pool } : {}),
        waitsFor: describe(e.to),
        statement: statementOf(byKey.get(e.from), e.shard),
      })),
    };
    if (wait.pool !== undefined) {
      if (session.checkoutSinceMs === 0) return;
      this.cancelled.set(session, victim.statementSeq);
      this.stats.deadlocks++;
      this.log.warn(logLine, "distributed deadlock detected: failing the youngest transaction's checkout");
      session.failCheckout(error);
      return;
    }
    const server = session.servers()[wait.shard];
    if (server == null || server.pendingReady <= 0) return;
    // A step of its commit waits there: cancelled only while that rolls the commit back everywhere (commit-steps.ts).
    const step = server.ownStatement;
    if (step !== null && !step.isCancellable()) return;
    this.cancelled.set(session, victim.statementSeq);
    this.stats.deadlocks++;
    this.log.warn(
      logLine,
      step === null
        ? 'distributed deadlock detected: cancelling the youngest transaction'
        : "distributed deadlock detected: cancelling the youngest transaction's commit",
    );
    server.scanner.replaceErrorInFlight(CANCELED_MARKER, error.toBuffer());
    void server.cancelHoldingWrites();
  }

  private closeConnections(): void {
    for (const conn of this.connections.values()) conn.terminate('deadlock checks idle');
    this.connections.clear();
  }
}

/** The request a session is on: its client request, and the step of its commit in flight (0: none). */
function requestOf(s: WatchedSession): string {
  return `${s.statementSeq}/${s.commitStepSeq()}`;
}

/** What `s` runs for the log line: the step of its commit on `shard` if one waits there, else its last statement. */
function statementOf(s: WatchedSession | undefined, shard: number): string | null {
  if (s === undefined) return null;
  return s.commitSteps().get(shard)?.sql ?? s.statementText();
}

/** A graph key as the DETAIL and log name it. */
function describe(key: string): string {
  return key.startsWith('t') ? `session ${key.slice(1)}` : key.slice(1);
}

/** One wait of a knot as the DETAIL names it. */
function describeEdge(e: WaitEdge): string {
  return e.pool === undefined
    ? `${describe(e.from)} waits on shard ${e.shard} for ${describe(e.to)}`
    : `${describe(e.from)} waits for a server of shard ${e.shard}, held by ${describe(e.to)}`;
}

/**
 * The checkouts `session` has queued, as OR-waits on whoever holds the servers of each pool, when that pool cannot
 * serve it otherwise (Pool.isExhausted). A holder is its session's node when that session is in this snapshot, in
 * transaction mode (it gives the server back when its transaction ends) and in session mode alike (when it leaves): an
 * idle holder has no wait, so it is free — its client may still end the transaction or leave — and the checkout is in
 * no knot; a holder that waits itself, on a lock or a checkout, is blocked with it. Anyone else holding a server (a
 * server being reset or health-checked, a client of a one-shard database, a session left out of the snapshot) is an
 * outsider that waits for nothing here, so the checkout can go on and is in no knot.
 */
function addCheckouts(
  graph: WaitGraphBuilder,
  session: WatchedSession,
  node: TransactionNode,
  heldBy: ReadonlyMap<ServerConnection, WatchedSession>,
  nodes: ReadonlyMap<WatchedSession, TransactionNode>,
): void {
  if (session.checkoutSinceMs === 0) return;
  for (const { shard, pool } of session.queuedCheckouts()) {
    if (!pool.isExhausted) continue;
    const label = `pool ${pool.id}`;
    const holders: WaitNode[] = [];
    for (const server of pool.checkedOut()) {
      const owner = heldBy.get(server);
      const ownerNode = owner !== undefined ? nodes.get(owner) : undefined;
      holders.push(ownerNode ?? { kind: 'outsider', label: `${label} server ${server.id}` });
    }
    graph.group(node, holders, shard, label);
  }
}

/**
 * One wait reported by the server at `where`, as an edge between proxy transactions and outsiders. A prepared
 * transaction is the proxy transaction whose commit (still running) prepared it, else an outsider.
 */
function addWait(
  graph: WaitGraphBuilder,
  where: string,
  wait: LockWait,
  held: ReadonlyMap<string, HeldBackend>,
  prepared: ReadonlyMap<string, HeldBackend>,
  nodes: ReadonlyMap<WatchedSession, TransactionNode>,
): void {
  const [host, port] = splitWhere(where);
  const waiter = held.get(backendKey(host, port, wait.waiterPid));
  const holder =
    wait.blockerPid === 0 ? prepared.get(wait.gid ?? '') : held.get(backendKey(host, port, wait.blockerPid));
  const waiterNode = waiter === undefined ? undefined : nodes.get(waiter.session);
  const holderNode = holder === undefined ? undefined : nodes.get(holder.session);
  // A session that moved to another request meanwhile: what its backend waits for (or holds) is not known for sure.
  if (
    (waiter !== undefined && waiterNode === undefined) ||
    (holder !== undefined && holderNode === undefined)
  )
    return;
  const from: WaitNode = waiterNode ?? { kind: 'outsider', label: `${where} pid ${wait.waiterPid}` };
  const to: WaitNode =
    holderNode !== undefined
      ? holderNode
      : wait.blockerPid === 0
        ? { kind: 'outsider', label: `prepared transaction '${wait.gid ?? '?'}'` }
        : { kind: 'outsider', label: `${where} pid ${wait.blockerPid}` };
  graph.edge(from, to, waiter?.shard ?? holder?.shard ?? -1);
}

function splitWhere(where: string): [string, number] {
  const at = where.lastIndexOf(':');
  return [where.slice(0, at), Number(where.slice(at + 1))];
}

// Distributed deadlock detection, the part with sockets and timers: the registry of sharded sessions (WatchedSession),
// a timer armed only while some request is in flight (it fires `deadlock_timeout` after the oldest one started), a
// check when a transaction holding servers on 2+ shards has waited that long — each PostgreSQL server it holds a
// server on is asked who waits for whom (lock-waits.ts, on connections of the check's own, never a client's), backend
// pids are mapped to the proxy transactions holding them, and the wait-for graph's cycles (deadlock-detector.ts) are
// asked for again before anything is cancelled — and the cancel of a cycle's youngest transaction on the shard where
// it waits, its 57014 rewritten into 40P01 "deadlock detected" for that one statement.
import type { Logger } from 'pino';
import { ServerConnection } from '../backend/server-connection.js';
import { runQuery } from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { DurationHistogram } from '../stats/duration-histogram.js';
import {
  cycleStillHolds,
  findCycles,
  WaitGraphBuilder,
  type TransactionNode,
  type WaitCycle,
  type WaitGraph,
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

  /** Arm the timer for the oldest request in flight, or stop (and close the check's connections) when there is none. */
  private rearm(): void {
    const timeoutMs = this.config().deadlockTimeoutMs;
    let oldest = Infinity;
    for (const s of this.sessions)
      if (s.inFlightSinceMs !== 0 && s.inFlightSinceMs < oldest) oldest = s.inFlightSinceMs;
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

  /** Sessions whose transaction holds servers on 2+ shards and whose request has waited deadlock_timeout, by database. */
  private candidates(): Map<string, WatchedSession[]> {
    const timeoutMs = this.config().deadlockTimeoutMs;
    const now = performance.now();
    const byDatabase = new Map<string, WatchedSession[]>();
    for (const s of this.sessions) {
      if (s.inFlightSinceMs === 0 || now - s.inFlightSinceMs < timeoutMs || s.heldShardCount() < 2) continue;
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
    const first = await this.snapshot(database, candidates);
    this.log.debug(
      { database, candidates: candidates.map((c) => c.id), edges: first.edges },
      'deadlock check: waits seen',
    );
    for (const [s, seq] of this.cancelled)
      if (s.statementSeq !== seq || !this.sessions.has(s)) this.cancelled.delete(s);
    const cancelledIds = new Set([...this.cancelled.keys()].map((s) => s.id));
    const cycles = findCycles(first).filter((c) => !cancelledIds.has(c.victim.sessionId));
    if (cycles.length === 0) return;
    // The servers were asked at different moments and a pid may have passed to another transaction since: ask again.
    const second = await this.snapshot(database, candidates);
    for (const cycle of cycles) {
      if (cycleStillHolds(cycle, second)) this.breakCycle(cycle);
    }
  }

  /**
   * The wait-for graph of `database`'s sessions: every server a candidate holds a connection on is asked for its lock
   * waits (pg_locks spans the whole server, so one query per server). A session that started another request while
   * the servers answered is left out (its waits may belong to either).
   */
  private async snapshot(database: string, candidates: readonly WatchedSession[]): Promise<WaitGraph> {
    const before = new Map<WatchedSession, number>();
    const targets = new Map<string, ServerConnection>();
    for (const s of this.sessions) {
      if (s.database === database) before.set(s, s.statementSeq);
    }
    for (const s of candidates) {
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
    const nodes = new Map<WatchedSession, TransactionNode>();
    for (const [s, seq] of before) {
      s.servers().forEach((server, shard) => {
        if (server === null) return;
        held.set(backendKey(server.address.host, server.address.port, server.backendPid), {
          session: s,
          shard,
        });
      });
      if (!this.sessions.has(s) || s.statementSeq !== seq) continue; // its waits are left out (addWait)
      nodes.set(s, {
        kind: 'transaction',
        sessionId: s.id,
        transactionSeq: s.transactionSeq,
        statementSeq: s.statementSeq,
        startedAtMs: s.startedAtMs,
      });
    }
    const graph = new WaitGraphBuilder();
    for (const { where, waits } of answers) {
      if (waits === null) continue;
      for (const w of waits) addWait(graph, where, w, held, nodes);
    }
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
   * Cancel the cycle's youngest transaction where it waits, if it is still on the statement the cycle was seen with;
   * the client gets 40P01 in place of the cancel's 57014.
   */
  private breakCycle(cycle: WaitCycle): void {
    const victim = cycle.victim;
    const byKey = new Map([...this.sessions].map((s) => [`t${s.id}`, s]));
    // Every proxy transaction of the cycle still on the request it waited in: one that finished means the cycle was
    // broken some other way (lock_timeout, a client's cancel), and nothing is cancelled.
    for (const [key, node] of cycle.members) {
      if (node.kind !== 'transaction') continue;
      const s = byKey.get(key);
      if (s === undefined || s.statementSeq !== node.statementSeq || s.inFlightSinceMs === 0) return;
    }
    const session = byKey.get(`t${victim.sessionId}`) as WatchedSession;
    const server = session.servers()[cycle.victimWait.shard];
    if (server == null || server.pendingReady <= 0) return;
    this.cancelled.set(session, victim.statementSeq);
    this.stats.deadlocks++;
    const detail = cycle.edges
      .map((e) => `${describe(e.from)} waits on shard ${e.shard} for ${describe(e.to)}`)
      .join('; ');
    const error = new PgError(
      'ERROR',
      SqlState.DeadlockDetected,
      'deadlock detected',
      `${detail}.`,
      "See the proxy's log for query details.",
    );
    this.log.warn(
      {
        database: session.database,
        victim: victim.sessionId,
        shard: cycle.victimWait.shard,
        cycle: cycle.edges.map((e) => ({
          waiter: describe(e.from),
          shard: e.shard,
          waitsFor: describe(e.to),
          statement: byKey.get(e.from)?.statementText() ?? null,
        })),
      },
      'distributed deadlock detected: cancelling the youngest transaction',
    );
    server.scanner.replaceErrorInFlight(CANCELED_MARKER, error.toBuffer());
    void server.cancelHoldingWrites();
  }

  private closeConnections(): void {
    for (const conn of this.connections.values()) conn.terminate('deadlock checks idle');
    this.connections.clear();
  }
}

/** A graph key as the DETAIL and log name it. */
function describe(key: string): string {
  return key.startsWith('t') ? `session ${key.slice(1)}` : key.slice(1);
}

/** One wait reported by the server at `where`, as an edge between proxy transactions and outsiders. */
function addWait(
  graph: WaitGraphBuilder,
  where: string,
  wait: LockWait,
  held: ReadonlyMap<string, HeldBackend>,
  nodes: ReadonlyMap<WatchedSession, TransactionNode>,
): void {
  const [host, port] = splitWhere(where);
  const waiter = held.get(backendKey(host, port, wait.waiterPid));
  const holder = wait.blockerPid === 0 ? undefined : held.get(backendKey(host, port, wait.blockerPid));
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

// The guard against a second live proxy with the same instance_id: each proxy holds a session-level advisory lock,
// keyed on a hash of its instance id, on every shard, on a connection of its own kept open for its lifetime. A second
// proxy with that id finds the lock taken and refuses to start; when the holder dies (even kill -9, or its host is
// lost: short server-side TCP keepalives end its session) PostgreSQL releases the lock with the session. While running,
// a lost lock connection is re-taken; finding the lock held by someone else then is reported (onConflict), loudly.
//
// Why a lock and not a heartbeat row: the lock needs no table (no DDL on the shards, no writes, no clock), it cannot be
// left behind by a crash (PostgreSQL ends it with the session), and "held" is a fact the server keeps rather than a
// timestamp every proxy has to interpret with a timeout.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ServerConnection } from '../backend/server-connection.js';
import { outcomeFailure, runQuery } from '../backend/server-query.js';
import type { ShardAccess } from '../backend/shard-access.js';

/**
 * The two int4 keys of pg_try_advisory_lock(key1, key2) for `instanceId`: 62 bits of SHA-256 (both non-negative,
 * so pg_locks shows them as they are). The two-key form keeps clear of applications' single bigint keys.
 */
export function instanceLockKeys(instanceId: string): readonly [number, number] {
  const digest = createHash('sha256').update(`shardgate instance_id ${instanceId}`, 'utf8').digest();
  return [digest.readUInt32BE(0) & 0x7fff_ffff, digest.readUInt32BE(4) & 0x7fff_ffff];
}

/**
 * The application_name of a lock connection, `shardgate-lock:<instance id>:<token of this process>` (at most 61
 * bytes; PostgreSQL keeps 63): shows in pg_stat_activity who holds an instance id, and tells this process's own lock
 * sessions from a twin's (one server database reached under two host spellings is locked once, not refused).
 */
export function instanceLockApplicationName(instanceId: string, processToken: string): string {
  return `shardgate-lock:${instanceId}:${processToken}`;
}

/**
 * Server-side TCP keepalives of the lock connection: if this proxy's host is lost (no FIN, no RST) PostgreSQL ends the
 * session, and releases the lock, well within a minute: probes start after 10 s of silence, 5 s apart, and the
 * connection is dropped after 3 unanswered ones, or once data it sent stayed unacknowledged for 30 s
 * (tcp_user_timeout, PostgreSQL 12+; on Linux it also bounds the probing, so about 35 s at most). idle_session_timeout
 * (14+) must not end it.
 * Each is set on its own: one the server cannot take (another platform) does not undo the others.
 */
const SESSION_SETTINGS: readonly { sql: string; minVersion: number }[] = [
  { sql: 'SET tcp_keepalives_idle = 10', minVersion: 0 },
  { sql: 'SET tcp_keepalives_interval = 5', minVersion: 0 },
  { sql: 'SET tcp_keepalives_count = 3', minVersion: 0 },
  { sql: 'SET tcp_user_timeout = 30000', minVersion: 120_000 },
  { sql: 'SET idle_session_timeout = 0', minVersion: 140_000 },
];

/** Who holds the lock instead of us, for messages: `backend pid 123 (application_name "…", client 10.0.0.5, since …)`. */
function holderQuery(keys: readonly [number, number]): string {
  return (
    `SELECT l.pid, a.application_name, host(a.client_addr), a.backend_start FROM pg_locks l ` +
    `LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted ` +
    `AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) ` +
    `AND l.classid = ${keys[0]}::oid AND l.objid = ${keys[1]}::oid AND l.objsubid = 2 LIMIT 1`
  );
}

/** A second live proxy holds this instance id on a shard: start-up refuses (the message names the id and the shard). */
export class InstanceIdInUseError extends Error {
  constructor(
    readonly instanceId: string,
    readonly database: string,
    readonly shard: number,
    readonly location: string,
    readonly holder: string,
  ) {
    super(
      `instance_id "${instanceId}" is in use by another live shardgate: shard ${shard} of database "${database}" ` +
        `(${location}) holds its lock for ${holder}. Two proxies with one instance_id would roll back each other's ` +
        'prepared transactions: give each proxy its own instance_id (or leave it unset: the default is unique per ' +
        'host name and port), or stop the other one',
    );
    this.name = 'InstanceIdInUseError';
  }
}

export interface InstanceLockOptions {
  instanceId: string;
  shards: ShardAccess;
  logger: Logger;
  /**
   * While running: another proxy holds the lock on some shard (a message naming the id, shard and holder), or no
   * longer on any (null). Called only when that changes.
   */
  onConflict(conflict: string | null): void;
  /** First delay between attempts to take a lock that could not be taken; doubles up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** How often a held lock's connection is checked with a query (a silent network loss shows up there). */
  probeIntervalMs?: number;
  /** A check not answered within this closes the connection, and the lock is taken again. */
  probeTimeoutMs?: number;
  /**
   * At start-up, how long a lock found held is tried again before refusing: a predecessor kill -9'd a moment ago
   * (a restart) holds it until its backend notices the closed socket.
   */
  startupGraceMs?: number;
}

/** Default `startupGraceMs`; and the pause between tries meanwhile. */
const STARTUP_GRACE_MS = 5_000;
const STARTUP_RETRY_MS = 200;

type TargetState = 'waiting' | 'held' | 'conflict';

/** One place to hold the lock: a shard's server database (shards on one server database share it). */
interface Target {
  readonly database: string;
  readonly shard: number;
  readonly location: string;
  readonly user: string;
  state: TargetState;
  server: ServerConnection | null;
  /** Failed attempts in a row (for the backoff and to keep logs short). */
  failures: number;
  holder: string | null;
  timer: NodeJS.Timeout | null;
  isProbing: boolean;
}

export class InstanceLock {
  private readonly opts: InstanceLockOptions;
  private readonly log: Logger;
  private readonly keys: readonly [number, number];
  private readonly appName: string;
  private readonly targets: Target[] = [];
  private probeTimer: NodeJS.Timeout | null = null;
  private conflict: string | null = null;
  private isClosed = false;

  constructor(opts: InstanceLockOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'instance-lock' });
    this.keys = instanceLockKeys(opts.instanceId);
    this.appName = instanceLockApplicationName(opts.instanceId, randomBytes(3).toString('hex').slice(0, 5));
  }

  /**
   * Take the lock on every shard before recovery runs. Connections are opened in parallel, the locks taken one
   * shard after the other in shard order (two proxies starting at once: the one that loses shard 0 stops there).
   * Another holder → every lock taken so far is released and InstanceIdInUseError thrown. A shard that cannot be
   * reached is warned about and tried again in the background, as the max_prepared_transactions check does.
   */
  async acquire(): Promise<void> {
    this.targets.push(...this.findTargets());
    const connected = await Promise.all(this.targets.map((t) => this.connect(t).catch((err: Error) => err)));
    for (const [i, t] of this.targets.entries()) {
      const server = connected[i];
      if (server instanceof Error) {
        this.unreachable(t, server.message);
        continue;
      }
      const outcome = await this.lockAtStartup(t, server);
      if (outcome === 'conflict') {
        const holder = t.holder ?? 'another session';
        this.close();
        for (const s of connected) if (!(s instanceof Error)) s.terminate('instance lock not taken');
        const err = new InstanceIdInUseError(this.opts.instanceId, t.database, t.shard, t.location, holder);
        this.log.error(
          {
            instanceId: this.opts.instanceId,
            database: t.database,
            shard: t.shard,
            location: t.location,
            holder,
          },
          'instance_id is in use by another live shardgate: refusing to start two-phase commit',
        );
        throw err;
      }
    }
    this.startProbes();
    const held = this.targets.filter((t) => t.state === 'held').length;
    this.log.info(
      { instanceId: this.opts.instanceId, held, shards: this.targets.length },
      'instance lock taken on every reachable shard (no other live shardgate uses this instance_id there)',
    );
  }

  /** Release every lock (close the connections) and stop retrying. */
  close(): void {
    this.isClosed = true;
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    for (const t of this.targets) {
      if (t.timer !== null) clearTimeout(t.timer);
      t.timer = null;
      const server = t.server;
      t.server = null;
      if (server === null) continue;
      server.onClose = null;
      server.terminate('shardgate stopping: instance lock released');
    }
  }

  // --- taking the lock ---------------------------------------------------------------------------------------------

  private findTargets(): Target[] {
    const shards = this.opts.shards;
    const seen = new Set<string>();
    const out: Target[] = [];
    for (const database of shards.shardedDatabases()) {
      const user = shards.users(database)[0];
      if (user === undefined) continue;
      for (let shard = 0; shard < shards.shardCount(database); shard++) {
        const location = shards.location(database, shard) ?? `${database} shard ${shard}`;
        if (seen.has(location)) continue; // one session lock per server database (a second would wait on the first)
        seen.add(location);
        out.push({
          database,
          shard,
          location,
          user,
          state: 'waiting',
          server: null,
          failures: 0,
          holder: null,
          timer: null,
          isProbing: false,
        });
      }
    }
    return out;
  }

  /** A new connection to the target with the session settings applied (those the server refuses are warned about). */
  private async connect(t: Target): Promise<ServerConnection> {
    const server = await this.opts.shards.connect(t.database, t.user, t.shard, this.appName);
    const version = await this.versionOf(server);
    for (const setting of SESSION_SETTINGS) {
      if (version < setting.minVersion) continue;
      const outcome = await runQuery(server, setting.sql);
      if (outcome.kind === 'lost') throw new Error(`connection lost: ${outcome.reason}`);
      if (outcome.kind === 'error')
        this.log.warn(
          { database: t.database, shard: t.shard, setting: setting.sql, err: outcome.message },
          'instance lock connection: setting refused (a lost host may hold the lock longer)',
        );
    }
    return server;
  }

  private async versionOf(server: ServerConnection): Promise<number> {
    const outcome = await runQuery(server, `SELECT current_setting('server_version_num')`);
    return outcome.kind === 'ok' ? Number(outcome.rows[0]?.[0] ?? '0') : 0;
  }

  /** pg_try_advisory_lock on `server`: held (kept, watched), conflict (holder noted, closed) or lost (closed). */
  /**
   * Take the lock on `t` at start-up: a lock found held is tried again, on a new connection, for startupGraceMs —
   * the holder may be this proxy's predecessor, killed a moment ago, whose backend has not ended yet. A live twin
   * still holds it after that: 'conflict'.
   */
  private async lockAtStartup(t: Target, first: ServerConnection): Promise<'held' | 'conflict' | 'lost'> {
    const deadline = Date.now() + (this.opts.startupGraceMs ?? STARTUP_GRACE_MS);
    let server = first;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.tryLock(t, server, true);
      if (outcome !== 'conflict' || Date.now() >= deadline) return outcome;
      if (attempt === 1) {
        this.log.info(
          { instanceId: this.opts.instanceId, shard: t.shard, holder: t.holder },
          'instance lock held by another session: trying again for a few seconds (a predecessor may be ending)',
        );
      }
      await new Promise((r) => setTimeout(r, STARTUP_RETRY_MS));
      const next = await this.connect(t).catch((err: Error) => err);
      if (next instanceof Error) {
        this.unreachable(t, next.message);
        return 'lost';
      }
      server = next;
    }
  }

  private async tryLock(
    t: Target,
    server: ServerConnection,
    isStartup: boolean,
  ): Promise<'held' | 'conflict' | 'lost'> {
    const outcome = await runQuery(server, `SELECT pg_try_advisory_lock(${this.keys[0]}, ${this.keys[1]})`);
    if (outcome.kind !== 'ok') {
      server.terminate('instance lock not taken');
      this.unreachable(t, outcomeFailure(outcome) ?? '');
      return 'lost';
    }
    if (outcome.rows[0]?.[0] === 't') {
      this.hold(t, server, isStartup);
      return 'held';
    }
    const holder = await this.describeHolder(server);
    server.terminate('instance lock held by another session');
    if (holder.isOurs) {
      // This process's own lock session on the same server database (another host spelling): already locked there.
      this.log.info(
        { database: t.database, shard: t.shard, location: t.location },
        'instance lock: this shard is a server database already locked for another shard',
      );
      this.hold(t, null, true);
      return 'held';
    }
    t.holder = holder.text;
    return 'conflict';
  }

  private async describeHolder(server: ServerConnection): Promise<{ text: string; isOurs: boolean }> {
    const outcome = await runQuery(server, holderQuery(this.keys));
    if (outcome.kind !== 'ok')
      return { text: `another session (not visible: ${outcomeFailure(outcome)})`, isOurs: false };
    const row = outcome.rows[0];
    if (row === undefined) return { text: 'another session (it ended meanwhile)', isOurs: false };
    const [pid, appName, client, since] = row;
    const parts = [`application_name "${appName ?? ''}"`];
    if (client !== null) parts.push(`client ${client}`);
    if (since !== null) parts.push(`connected since ${since}`);
    return { text: `backend pid ${pid ?? '?'} (${parts.join(', ')})`, isOurs: appName === this.appName };
  }

  /** The lock is ours on `t`: on `server` (kept and watched), or on another shard's session (null: same database). */
  private hold(t: Target, server: ServerConnection | null, isStartup: boolean): void {
    if (this.isClosed) {
      server?.terminate('shardgate stopping: instance lock released');
      return;
    }
    const wasConflict = t.state === 'conflict';
    t.state = 'held';
    t.server = server;
    t.failures = 0;
    t.holder = null;
    if (server !== null) server.onClose = (_s, reason) => this.lost(t, reason);
    if (!isStartup)
      this.log.info(
        { instanceId: this.opts.instanceId, database: t.database, shard: t.shard },
        'instance lock taken again on this shard',
      );
    if (wasConflict) this.updateConflict();
  }

  /** The lock connection closed while running: PostgreSQL released the lock; take it again at once. */
  private lost(t: Target, reason: string): void {
    t.server = null;
    if (this.isClosed) return;
    t.state = 'waiting';
    this.log.warn(
      { instanceId: this.opts.instanceId, database: t.database, shard: t.shard, reason },
      'instance lock connection lost: taking the lock again',
    );
    this.schedule(t, 0);
  }

  /** A shard could not be reached (at start-up or while retrying): warn (not every time), retry with backoff. */
  private unreachable(t: Target, err: string): void {
    t.failures++;
    if (t.failures === 1 || t.failures % 10 === 0)
      this.log.warn(
        { instanceId: this.opts.instanceId, database: t.database, shard: t.shard, err, attempts: t.failures },
        'instance lock: cannot reach this shard (unreachable?); retrying in the background',
      );
    this.schedule(t, this.backoff(t.failures));
  }

  private backoff(failures: number): number {
    const first = this.opts.retryDelayMs ?? 1_000;
    return Math.min(first * 2 ** Math.max(0, failures - 1), this.opts.maxRetryDelayMs ?? 5_000);
  }

  private schedule(t: Target, delayMs: number): void {
    if (this.isClosed || t.timer !== null) return;
    t.timer = setTimeout(() => {
      t.timer = null;
      void this.retry(t);
    }, delayMs);
    t.timer.unref();
  }

  private async retry(t: Target): Promise<void> {
    if (this.isClosed) return;
    let server: ServerConnection;
    try {
      server = await this.connect(t);
    } catch (err) {
      this.unreachable(t, (err as Error).message);
      return;
    }
    if (this.isClosed) {
      server.terminate('shardgate stopping');
      return;
    }
    const outcome = await this.tryLock(t, server, false);
    if (outcome !== 'conflict') return;
    if (this.isClosed) return;
    t.failures++;
    if (t.state !== 'conflict') {
      t.state = 'conflict';
      this.log.error(
        {
          instanceId: this.opts.instanceId,
          database: t.database,
          shard: t.shard,
          location: t.location,
          holder: t.holder,
        },
        'instance_id is in use by another live shardgate on this shard: two-phase commits are refused ' +
          'until it releases the lock (stop one of the two proxies)',
      );
      this.updateConflict();
    }
    this.schedule(t, this.opts.maxRetryDelayMs ?? 5_000);
  }

  private updateConflict(): void {
    const t = this.targets.find((x) => x.state === 'conflict');
    const next =
      t === undefined
        ? null
        : `instance_id "${this.opts.instanceId}" is in use by another live shardgate: shard ${t.shard} of ` +
          `database "${t.database}" (${t.location}) holds its lock for ${t.holder ?? 'another session'}`;
    if (next === this.conflict) return;
    this.conflict = next;
    if (next === null)
      this.log.info({ instanceId: this.opts.instanceId }, 'instance lock held on every shard again');
    this.opts.onConflict(next);
  }

  // --- watching held locks -----------------------------------------------------------------------------------------

  /** Every probeIntervalMs, `SELECT 1` on each held lock's connection; one not answered in time is closed. */
  private startProbes(): void {
    const intervalMs = this.opts.probeIntervalMs ?? 10_000;
    this.probeTimer = setInterval(() => {
      for (const t of this.targets) if (t.state === 'held' && !t.isProbing) void this.probe(t);
    }, intervalMs);
    this.probeTimer.unref();
  }

  private async probe(t: Target): Promise<void> {
    const server = t.server;
    if (server === null) return;
    t.isProbing = true;
    const timeoutMs = this.opts.probeTimeoutMs ?? 10_000;
    const timer = setTimeout(
      () => server.destroy(`instance lock check not answered within ${timeoutMs} ms`),
      timeoutMs,
    );
    timer.unref();
    try {
      await runQuery(server, 'SELECT 1'); // a lost connection ends here too; onClose re-takes the lock
    } finally {
      clearTimeout(timer);
      t.isProbing = false;
    }
  }
}

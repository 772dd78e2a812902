// The replay-LSN monitor of one shard (PgDog's LSN check): lsn_check_delay after the shard's pools are created (off
// when it is not set, as in PgDog), then every lsn_check_interval after the previous check ended, each server of the
// shard — primary and replicas — answers LSN_QUERY within lsn_check_timeout, on a connection of the monitor's own
// (kept open between checks). A replica trailing the primary by ban_replica_lag ms or ban_replica_lag_bytes bytes or
// more is banned until a check finds it caught up (replica-lag.ts computes the lag). The readings stay on each member
// (`Member.lsn`, `Member.lag`) for whoever needs them; on a shard whose entries are all `role = "auto"` they also
// tell which server is the primary (`ReplicaSet.follow`). The settings are read again at each check (reload).
import type { GeneralConfig } from '../config/types.js';
import { lagBanReason, LSN_QUERY, PrimaryHistory, readLsnRow, type LsnReading } from './replica-lag.js';
import type { Member, ReplicaSet } from './replica-set.js';
import { ServerConnection } from './server-connection.js';
import { runQuery } from './server-query.js';

export type LsnSettings = Pick<
  GeneralConfig,
  | 'lsnCheckIntervalMs'
  | 'lsnCheckTimeoutMs'
  | 'lsnCheckDelayMs'
  | 'banReplicaLagMs'
  | 'banReplicaLagBytes'
  | 'banTimeoutMs'
>;

/** How often a monitor that is off looks again whether a reload turned it on. */
const OFF_RECHECK_MS = 1000;

export class LsnMonitor {
  private timer: NodeJS.Timeout | null = null;
  private lastRunAtMs: number | null = null;
  private readonly startedAtMs: number;
  private isStopped = false;
  private readonly connections = new Map<Member, ServerConnection>();
  private history = new PrimaryHistory();

  constructor(
    private readonly set: ReplicaSet,
    private readonly settings: () => LsnSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAtMs = now();
    this.schedule();
  }

  private schedule(): void {
    if (this.isStopped) return;
    const s = this.settings();
    let inMs: number | null = null;
    if (s.lsnCheckDelayMs !== null) {
      const dueAt =
        this.lastRunAtMs === null
          ? this.startedAtMs + s.lsnCheckDelayMs
          : this.lastRunAtMs + s.lsnCheckIntervalMs;
      inMs = Math.max(0, dueAt - this.now());
    }
    this.timer = setTimeout(() => void this.run(inMs === null), inMs ?? OFF_RECHECK_MS);
    this.timer.unref();
  }

  private async run(isOff: boolean): Promise<void> {
    this.timer = null;
    if (!isOff) {
      try {
        if (!this.set.isPaused()) await this.check();
      } catch (err) {
        // A check reports its failures itself; anything thrown here is a bug: logged, and the checks go on.
        this.set.primary.pool.opts.logger.error({ err }, 'replay-LSN check failed unexpectedly');
      }
      this.lastRunAtMs = this.now();
    }
    this.schedule();
  }

  /** One check of every server of the shard (exposed for tests through the admin path; runs no faster than asked). */
  async check(): Promise<void> {
    const members = this.set.members();
    const startedAtMs = this.now();
    const readings = await Promise.all(members.map((m) => this.read(m)));
    if (this.isStopped) return;
    const now = this.now();
    members.forEach((m, i) => {
      m.lsn = readings[i];
      m.lsnCheckedAtMs = startedAtMs;
    });
    if (this.set.follow()) this.history = new PrimaryHistory(); // role = "auto": another server is the primary now
    const primary = this.set.primary.lsn;
    if (primary === null || primary.isInRecovery || primary.lsn === null) return; // no lag without the primary's
    this.history.record(primary.lsn, now);
    const s = this.settings();
    // A lag ban holds at least until the next check can lift it.
    const holdMs = Math.max(s.banTimeoutMs, 2 * s.lsnCheckIntervalMs + s.lsnCheckTimeoutMs);
    let slowest: bigint | null = null;
    for (const m of this.set.replicas) {
      if (m.lsn === null) continue; // unreachable: the health checks ban it, not this monitor
      m.lag = this.history.lagOf(m.lsn.lsn, now);
      this.set.judgeLag(m, lagBanReason(m.lag, s.banReplicaLagMs, s.banReplicaLagBytes), holdMs);
      const replay = m.lsn.lsn ?? 0n;
      if (slowest === null || replay < slowest) slowest = replay;
    }
    this.history.trim(slowest ?? primary.lsn);
  }

  /** LSN_QUERY on `m`'s server, on the monitor's connection to it (opened when missing); null when it failed. */
  private async read(m: Member): Promise<LsnReading | null> {
    const timeoutMs = this.settings().lsnCheckTimeoutMs;
    const { address, startupParams, logger } = m.pool.opts;
    let server = this.connections.get(m);
    if (server !== undefined && (server.isClosed || server.address !== address)) {
      if (!server.isClosed) server.terminate('server settings changed');
      this.connections.delete(m);
      server = undefined;
    }
    let failure: string;
    try {
      if (server === undefined) {
        server = new ServerConnection(address);
        this.connections.set(m, server);
        await server.connect(timeoutMs, startupParams);
      }
      const reading = await withTimeout(runQuery(server, LSN_QUERY), timeoutMs);
      if (reading === null) failure = `timed out after ${timeoutMs} ms`;
      else if (reading.kind !== 'ok') failure = reading.kind === 'error' ? reading.message : reading.reason;
      else {
        const parsed = readLsnRow(reading.rows[0]);
        if (parsed !== null) return parsed;
        failure = 'unexpected answer';
      }
    } catch (err) {
      failure = `could not connect: ${(err as Error).message}`;
    }
    const dead = this.connections.get(m);
    if (dead !== undefined) dead.destroy('replay-LSN check failed');
    this.connections.delete(m);
    logger.debug(
      { shard: address.shard, host: address.host, port: address.port, failure },
      'replay-LSN check failed',
    );
    return null;
  }

  stop(): void {
    this.isStopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const server of this.connections.values()) server.terminate('replay-LSN monitor stopped');
    this.connections.clear();
  }
}

/** `promise`'s value, or null when it takes longer than `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

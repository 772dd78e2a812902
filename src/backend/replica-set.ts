// One shard's servers for one user: the primary's pool and the replicas' pools. Picks the pool a request goes to
// (writes: the primary; reads: per read_write_split and load_balancing_strategy over the replicas not banned), and
// owns the bans: a replica whose connect or health check fails is left out for ban_timeout (never the primary; when
// every replica is banned, reads go to the primary); BAN bans until UNBAN. A failed checkout on a replica bans it and
// retries on what is left; a replica server lost while a request was on it bans it too. Replica servers are
// health-checked before checkout (health-check.ts) and idle replicas in the background (idle-health-monitor.ts calls
// checkIdle()).
import type { DatabaseConfig, GeneralConfig } from '../config/types.js';
import type { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { checkAddress, checkServer, isCheckoutCheckDue, type HealthSettings } from './health-check.js';
import type { CheckoutWait, Pool } from './pool.js';
import { NO_LAG, type LsnReading, type ReplicaLag } from './replica-lag.js';
import type { ServerConnection } from './server-connection.js';

/**
 * What a request needs: `write` → the primary, and it may change data there (read-your-writes then asks the primary's
 * WAL position when the server is given back); `read-primary` → the primary, changing no data (a SET, SHOW,
 * transaction control, a read the split or an override keeps on the primary); `read` → any server the split allows;
 * `replica` → a replica first.
 */
export type ReadIntent = 'write' | 'read-primary' | 'read' | 'replica';

/** Whether a request with `intent` may be served by a replica (else its shard's primary serves it). */
export function mayUseReplica(intent: ReadIntent): boolean {
  return intent === 'read' || intent === 'replica';
}

export interface Member {
  readonly pool: Pool;
  /** Changes only when the shard's servers are `role = "auto"` and the primary moved (`follow`). */
  role: 'primary' | 'replica';
  /** Configured `role = "auto"`: may become the primary when it reports it is one. */
  readonly isAuto: boolean;
  /** lb_weight. */
  weight: number;
  /** Banned until this time (Date.now() ms); 0 = not banned; Infinity = banned by BAN until UNBAN. */
  bannedUntilMs: number;
  banReason: string | null;
  /** Smooth weighted round robin's running score. */
  current: number;
  /** The ban is the replay-LSN monitor's (replica lag): lifted as soon as a check finds the replica caught up. */
  isLagBan: boolean;
  /** What the replay-LSN monitor last read here (null: not checked yet, or the check failed). */
  lsn: LsnReading | null;
  /** How far this replica trailed its primary at the monitor's last check. */
  lag: ReplicaLag;
  /** When the check that read `lsn` started (Date.now() ms; 0: never). */
  lsnCheckedAtMs: number;
}

export type SetAcquireCallback = (
  err: PgError | null,
  server: ServerConnection | null,
  pool: Pool | null,
) => void;

/** One member's check: `failure` null when it answered. */
export interface HealthResult {
  member: Member;
  failure: string | null;
}

/** FATALs a server sends when a session outstayed its own timeouts: the client's doing, not the server's health. */
const CLIENT_TIMEOUTS: ReadonlySet<string> = new Set([
  SqlState.IdleInTransactionSessionTimeout,
  SqlState.TransactionTimeout,
  SqlState.IdleSessionTimeout,
]);

type Settings = Pick<GeneralConfig, 'readWriteSplit' | 'loadBalancingStrategy' | 'banTimeoutMs'> &
  Partial<HealthSettings> &
  Partial<Pick<GeneralConfig, 'lsnCheckDelayMs'>>;

export class ReplicaSet {
  /** The shard's primary: fixed, unless every entry of the shard is `role = "auto"` (see `follow`). */
  primary: Member;
  replicas: Member[];
  private turn = 0;
  /** The members in the order of their entries (primary first, then replicas), whatever `follow` made of them. */
  readonly inConfigOrder: readonly Member[];
  /** Called when `follow` moved the primary to another member (the pool manager points the shard's pool at it). */
  onPrimaryChange: ((primary: Member) => void) | null = null;

  constructor(
    primary: Pool,
    primaryDb: DatabaseConfig,
    replicas: { pool: Pool; db: DatabaseConfig }[],
    private readonly settings: () => Settings,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.primary = member(primary, 'primary', primaryDb);
    this.replicas = replicas.map((r) => member(r.pool, 'replica', r.db));
    this.inConfigOrder = [this.primary, ...this.replicas];
    // A replica whose server dies under a request (crash, shutdown, network) is banned as a failed connect is: the
    // client of that request gets the server's error; later requests go to what is left. Not when the server ended
    // the session for the client's own doing (a READ ONLY block left idle past idle_in_transaction_session_timeout):
    // the replica is healthy.
    for (const m of this.isAutoShard ? this.members() : this.replicas) {
      m.pool.onLostInUse = (reason, fatalCode) => {
        if (m.role === 'primary' || (fatalCode !== null && CLIENT_TIMEOUTS.has(fatalCode))) return;
        if (this.ban(m, `server lost while in use: ${reason}`))
          m.pool.opts.logger.warn({ reason }, 'replica banned: its server connection was lost while in use');
      };
    }
  }

  /** Every entry of the shard is `role = "auto"`: the primary follows what the servers report (`follow`). */
  get isAutoShard(): boolean {
    return this.primary.isAuto && this.replicas.every((m) => m.isAuto);
  }

  /**
   * `role = "auto"` (PgDog's): after the replay-LSN monitor's readings (`Member.lsn`), a shard whose primary no
   * longer reports itself one (unreachable, or in recovery) takes the one other member that does as its primary; the
   * old primary becomes a replica (reads once it is back as a standby; until then the health checks ban it). Never
   * promotes anything: it follows a failover someone else made. Two members that both claim to be the primary (the old
   * one still up): the current one stays, with a warning. Returns whether the primary moved.
   */
  follow(): boolean {
    if (!this.isAutoShard) return false;
    const current = this.primary;
    const claimants = this.replicas.filter((m) => m.lsn !== null && !m.lsn.isInRecovery);
    const logger = current.pool.opts.logger;
    if (current.lsn !== null && !current.lsn.isInRecovery) {
      if (claimants.length > 0) {
        logger.warn(
          { primary: label(current), alsoPrimary: claimants.map(label) },
          'more than one server of the shard reports it is a primary: the current primary stays',
        );
      }
      return false;
    }
    if (claimants.length !== 1) return false;
    const next = claimants[0];
    this.unban(next);
    this.replicas = [...this.replicas.filter((m) => m !== next), current];
    next.role = 'primary';
    next.pool.opts.role = 'primary';
    current.role = 'replica';
    current.pool.opts.role = 'replica';
    current.lag = NO_LAG;
    this.primary = next;
    logger.warn(
      { from: label(current), to: label(next), reason: current.lsn === null ? 'unreachable' : 'in recovery' },
      'the shard has a new primary (role = "auto"): writes go there now',
    );
    this.onPrimaryChange?.(next);
    return true;
  }

  get hasReplicas(): boolean {
    return this.replicas.length > 0;
  }

  /** PAUSE is in effect (no background checks meanwhile). */
  isPaused(): boolean {
    return this.primary.pool.paused;
  }

  members(): Member[] {
    return [this.primary, ...this.replicas];
  }

  /** The replay-LSN monitor runs: replicas' replay positions are known (`Member.lsn`), read-your-writes works. */
  get tracksLsn(): boolean {
    return this.settings().lsnCheckDelayMs != null && this.replicas.length > 0;
  }

  /**
   * The pool for `intent`, leaving out `excluded` members (replicas that just failed) and replicas not known to have
   * replayed `minLsn` (read-your-writes: then the primary, whatever the split says).
   */
  pick(intent: ReadIntent, excluded: ReadonlySet<Member> = new Set(), minLsn: bigint | null = null): Member {
    if (!mayUseReplica(intent) || this.replicas.length === 0) return this.primary;
    const split = this.settings().readWriteSplit;
    if (split === 'prefer_primary' && intent !== 'replica') return this.primary;
    const now = this.now();
    const replicas = this.replicas.filter(
      (m) => !excluded.has(m) && !this.isBanned(m, now) && (minLsn === null || hasReplayed(m, minLsn)),
    );
    const isAnyBanned = replicas.length < this.replicas.length;
    // Every replica banned (or failing just now): the primary answers. PgDog clears the bans instead, because it has
    // nowhere else to send the read; here the primary is always there, and clearing would make the bans useless.
    if (replicas.length === 0) return this.primary;
    const withPrimary =
      intent !== 'replica' &&
      (split === 'include_primary' || (split === 'include_primary_if_replica_banned' && isAnyBanned));
    return this.choose(withPrimary ? [this.primary, ...replicas] : replicas);
  }

  private choose(candidates: Member[]): Member {
    if (candidates.length === 1) return candidates[0];
    switch (this.settings().loadBalancingStrategy) {
      case 'round_robin':
        return candidates[this.turn++ % candidates.length];
      case 'least_active_connections': {
        let best = candidates[0];
        for (const m of candidates) if (load(m) < load(best)) best = m;
        return best;
      }
      case 'weighted_round_robin':
        return smoothWeighted(candidates);
      case 'random':
        return candidates[Math.floor(this.random() * candidates.length)];
    }
  }

  isBanned(m: Member, now: number = this.now()): boolean {
    if (m.bannedUntilMs === 0) return false;
    if (now < m.bannedUntilMs) return true;
    this.unban(m);
    return false;
  }

  /**
   * Leave a replica out for ban_timeout (`isManual`: until UNBAN); the primary is never banned. Counted and logged;
   * returns whether it was banned now (false: the primary, or already banned — a manual ban still replaces a timed one).
   */
  ban(m: Member, reason: string, isManual = false): boolean {
    if (m.role === 'primary') return false;
    if (this.isBanned(m) && (!isManual || m.bannedUntilMs === Infinity)) return false;
    m.bannedUntilMs = isManual ? Infinity : this.now() + this.settings().banTimeoutMs;
    m.banReason = reason;
    m.isLagBan = false;
    if (m.pool.opts.stats !== undefined) m.pool.opts.stats.health.bans++;
    const { address } = m.pool.opts;
    m.pool.opts.logger.warn(
      { shard: address.shard, host: address.host, port: address.port, reason, manual: isManual },
      'replica banned',
    );
    return true;
  }

  /** Milliseconds left on `m`'s ban (0: not banned; null: banned by BAN, no expiry). */
  banTimeLeftMs(m: Member, now: number = this.now()): number | null {
    if (!this.isBanned(m, now)) return 0;
    return m.bannedUntilMs === Infinity ? null : m.bannedUntilMs - now;
  }

  unban(m: Member): void {
    m.bannedUntilMs = 0;
    m.banReason = null;
    m.isLagBan = false;
  }

  /**
   * The replay-LSN monitor's verdict on replica `m`: `reason` non-null bans it (for at least `holdMs`, renewed at each
   * check while it lags; a ban for another cause is left alone); null lifts a lag ban at once (it caught up).
   */
  judgeLag(m: Member, reason: string | null, holdMs: number): void {
    if (m.role === 'primary') return;
    const { address, logger } = m.pool.opts;
    const where = { shard: address.shard, host: address.host, port: address.port };
    if (reason === null) {
      if (!m.isLagBan) return;
      this.unban(m);
      logger.info({ ...where, lagBytes: m.lag.bytes, lagMs: m.lag.ms }, 'replica caught up: lag ban lifted');
      return;
    }
    const isBanned = this.isBanned(m);
    if (isBanned && !m.isLagBan) return;
    m.bannedUntilMs = this.now() + holdMs;
    m.banReason = reason;
    m.isLagBan = true;
    if (isBanned) return;
    if (m.pool.opts.stats !== undefined) m.pool.opts.stats.health.bans++;
    logger.warn({ ...where, reason, manual: false }, 'replica banned');
  }

  /**
   * Check out a server for `intent`: a replica whose checkout fails (it cannot connect) is banned and the request
   * tries the next candidate, ending on the primary; the primary's error is the caller's, and so is a distributed
   * deadlock's 40P01 (the check failed the wait: no fault of the member). The member is picked now; a checkout that
   * has to wait is queued in that member's pool alone, told to `onWait` (and `onWait(null)` when it is over).
   */
  acquire(
    intent: ReadIntent,
    cb: SetAcquireCallback,
    onBan: (m: Member, reason: string) => void,
    minLsn: bigint | null = null,
    onWait?: (wait: { readonly pool: Pool; readonly wait: CheckoutWait } | null) => void,
  ): void {
    const excluded = new Set<Member>();
    const fail = (m: Member, reason: string): void => {
      excluded.add(m);
      if (this.ban(m, reason)) onBan(m, reason);
      attempt();
    };
    const attempt = (): void => {
      const m = this.pick(intent, excluded, minLsn);
      let isQueued = false;
      const wait = m.pool.acquire((err, server) => {
        if (isQueued) onWait?.(null);
        if (err === null && server !== null && m.role === 'replica' && this.isCheckDue(server)) {
          return void this.checkBeforeCheckout(m, server).then((failure) =>
            failure === null ? cb(null, server, m.pool) : fail(m, failure),
          );
        }
        if (err === null || m.role === 'primary' || err.code === SqlState.DeadlockDetected)
          return cb(err, server, err === null ? m.pool : null);
        fail(m, err.message);
      });
      if (wait !== null) {
        isQueued = true;
        onWait?.({ pool: m.pool, wait });
      }
    };
    attempt();
  }

  private isCheckDue(server: ServerConnection): boolean {
    const interval = this.settings().healthcheckIntervalMs;
    return interval !== undefined && isCheckoutCheckDue(server.healthyAt, this.now(), interval);
  }

  /** The checkout check of a replica server: on failure the server is discarded (the caller bans the replica). */
  private async checkBeforeCheckout(m: Member, server: ServerConnection): Promise<string | null> {
    const failure = await this.runCheck(m, (timeoutMs) => checkServer(server, timeoutMs));
    if (failure === null) server.healthyAt = this.now();
    else m.pool.discard(server, failure);
    return failure;
  }

  /** Run one check of `m`, counted; null when healthy, else why not. */
  private async runCheck(
    m: Member,
    check: (timeoutMs: number) => Promise<string | null>,
  ): Promise<string | null> {
    const health = m.pool.opts.stats?.health;
    if (health !== undefined) health.checks++;
    const failure = await check(this.settings().healthcheckTimeoutMs ?? 5000);
    if (failure !== null && health !== undefined) health.checkFailures++;
    return failure;
  }

  /**
   * The idle check (and HEALTHCHECK): every replica not banned (`only`: just that member, banned or not) answers `;`
   * on one of its idle servers, or on a connection opened for the check; one that does not is banned. A primary may be
   * checked too (HEALTHCHECK <id>): it is never banned, the failure is only counted and logged.
   */
  async checkIdle(only?: Member): Promise<HealthResult[]> {
    const targets = only !== undefined ? [only] : this.replicas.filter((m) => !this.isBanned(m));
    return Promise.all(
      targets.map(async (m): Promise<HealthResult> => {
        const failure = await this.runCheck(m, (timeoutMs) => checkIdleMember(m.pool, timeoutMs));
        if (failure !== null && !this.ban(m, failure)) {
          const { address } = m.pool.opts;
          m.pool.opts.logger.warn({ shard: address.shard, host: address.host, port: address.port }, failure);
        }
        return { member: m, failure };
      }),
    );
  }

  /** The member holding `pool`, if any. */
  memberOf(pool: Pool): Member | undefined {
    return this.members().find((m) => m.pool === pool);
  }
}

/** `;` on an idle server of `pool` (given back after), or on a connection opened just for the check. */
async function checkIdleMember(pool: Pool, timeoutMs: number): Promise<string | null> {
  const server = pool.takeIdle();
  if (server === null) return checkAddress(pool.opts.address, pool.opts.startupParams, timeoutMs);
  const failure = await checkServer(server, timeoutMs);
  if (failure === null) {
    server.healthyAt = Date.now();
    pool.release(server);
  } else pool.discard(server, failure);
  return failure;
}

/** The monitor last saw `m` replay at or past `lsn`. */
export function hasReplayed(m: Member, lsn: bigint): boolean {
  return m.lsn !== null && m.lsn.lsn !== null && m.lsn.lsn >= lsn;
}

function label(m: Member): string {
  const { host, port } = m.pool.opts.address;
  return `${host}:${port}`;
}

function member(pool: Pool, role: 'primary' | 'replica', db: DatabaseConfig): Member {
  return {
    pool,
    role,
    isAuto: db.role === 'auto',
    weight: db.lbWeight,
    bannedUntilMs: 0,
    banReason: null,
    current: 0,
    isLagBan: false,
    lsn: null,
    lag: NO_LAG,
    lsnCheckedAtMs: 0,
  };
}

function load(m: Member): number {
  return m.pool.activeCount + m.pool.waiting;
}

/** nginx's smooth weighted round robin: even spread in proportion to the weights; weight 0 only when all are 0. */
function smoothWeighted(candidates: Member[]): Member {
  let total = 0;
  let best: Member | null = null;
  for (const m of candidates) {
    m.current += m.weight;
    total += m.weight;
    if (best === null || m.current > best.current) best = m;
  }
  if (best === null || total === 0) return candidates[0];
  best.current -= total;
  return best;
}

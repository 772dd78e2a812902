// One shard's servers for one user: the primary's pool and the replicas' pools. Picks the pool a request goes to
// (writes: the primary; reads: per read_write_split and load_balancing_strategy over the replicas not banned), and
// owns the bans: a replica whose connect fails is left out for ban_timeout (never the primary; when every replica is
// banned, reads go to the primary). A failed checkout on a replica bans it and retries on what is left.
import type { DatabaseConfig, GeneralConfig } from '../config/types.js';
import type { PgError } from '../errors/pg-error.js';
import type { Pool } from './pool.js';
import type { ServerConnection } from './server-connection.js';

/** What a request needs: `write` → the primary; `read` → any server the split allows; `replica` → a replica first. */
export type ReadIntent = 'write' | 'read' | 'replica';

export interface Member {
  readonly pool: Pool;
  readonly role: 'primary' | 'replica';
  /** lb_weight. */
  weight: number;
  /** Banned until this time (Date.now() ms); 0 = not banned. */
  bannedUntilMs: number;
  banReason: string | null;
  /** Smooth weighted round robin's running score. */
  current: number;
}

export type SetAcquireCallback = (
  err: PgError | null,
  server: ServerConnection | null,
  pool: Pool | null,
) => void;

type Settings = Pick<GeneralConfig, 'readWriteSplit' | 'loadBalancingStrategy' | 'banTimeoutMs'>;

export class ReplicaSet {
  readonly primary: Member;
  readonly replicas: Member[];
  private turn = 0;

  constructor(
    primary: Pool,
    primaryDb: DatabaseConfig,
    replicas: { pool: Pool; db: DatabaseConfig }[],
    private readonly settings: () => Settings,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.primary = member(primary, 'primary', primaryDb.lbWeight);
    this.replicas = replicas.map((r) => member(r.pool, 'replica', r.db.lbWeight));
  }

  get hasReplicas(): boolean {
    return this.replicas.length > 0;
  }

  members(): Member[] {
    return [this.primary, ...this.replicas];
  }

  /** The pool for `intent`, leaving out `excluded` members (replicas that just failed). */
  pick(intent: ReadIntent, excluded: ReadonlySet<Member> = new Set()): Member {
    if (intent === 'write' || this.replicas.length === 0) return this.primary;
    const split = this.settings().readWriteSplit;
    if (split === 'prefer_primary' && intent !== 'replica') return this.primary;
    const now = this.now();
    const replicas = this.replicas.filter((m) => !excluded.has(m) && !this.isBanned(m, now));
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

  /** Leave a replica out for ban_timeout; the primary is never banned. Returns whether it was banned now. */
  ban(m: Member, reason: string): boolean {
    if (m.role === 'primary' || this.isBanned(m)) return false;
    m.bannedUntilMs = this.now() + this.settings().banTimeoutMs;
    m.banReason = reason;
    return true;
  }

  unban(m: Member): void {
    m.bannedUntilMs = 0;
    m.banReason = null;
  }

  /**
   * Check out a server for `intent`: a replica whose checkout fails (it cannot connect) is banned and the request
   * tries the next candidate, ending on the primary; the primary's error is the caller's.
   */
  acquire(intent: ReadIntent, cb: SetAcquireCallback, onBan: (m: Member, reason: string) => void): void {
    const excluded = new Set<Member>();
    const attempt = (): void => {
      const m = this.pick(intent, excluded);
      m.pool.acquire((err, server) => {
        if (err === null || m.role === 'primary') return cb(err, server, err === null ? m.pool : null);
        excluded.add(m);
        if (this.ban(m, err.message)) onBan(m, err.message);
        attempt();
      });
    };
    attempt();
  }

  /** The member holding `pool`, if any. */
  memberOf(pool: Pool): Member | undefined {
    return this.members().find((m) => m.pool === pool);
  }
}

function member(pool: Pool, role: 'primary' | 'replica', weight: number): Member {
  return { pool, role, weight, bannedUntilMs: 0, banReason: null, current: 0 };
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

// ReplicaSet: which pool a request gets per read_write_split and load_balancing_strategy, and bans (never the
// primary; every replica banned → the primary; expiry). Real Pool objects that never connect (nothing is acquired).
import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from '../../../src/backend/pool.js';
import { ReplicaSet, type Member } from '../../../src/backend/replica-set.js';
import type { DatabaseConfig, GeneralConfig } from '../../../src/config/types.js';
import { GENERAL_DEFAULTS } from '../../../src/config/defaults.js';
import { silentLogger } from '../../../src/logging/logger.js';
import { ShardStats } from '../../../src/stats/shard-stats.js';
import { freePort } from '../../../src/testing/free-port.js';

const pools: Pool[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

function pool(port: number, stats?: ShardStats): Pool {
  const p = new Pool({
    stats,
    address: { host: '127.0.0.1', port, database: 'db', user: 'u', password: null, shard: 0 },
    maxSize: 1,
    minSize: 0,
    checkoutTimeoutMs: 1000,
    connectTimeoutMs: 1000,
    idleTimeoutMs: 0,
    startupParams: {},
    logger: silentLogger(),
    clientUser: 'u',
    clientDatabase: 'db',
  });
  pools.push(p);
  return p;
}

function db(lbWeight: number): DatabaseConfig {
  const base = { name: 'db', host: 'h', port: 1, databaseName: 'db', user: null, password: null, shard: 0 };
  return { ...base, role: 'primary', lbWeight };
}

function makeSet(
  settings: Partial<GeneralConfig>,
  weights = [255, 255, 255],
  clock = { now: 1000 },
): ReplicaSet {
  const [pw, ...rw] = weights;
  return new ReplicaSet(
    pool(1),
    db(pw),
    rw.map((w, i) => ({ pool: pool(2 + i), db: db(w) })),
    () => ({ ...GENERAL_DEFAULTS, ...settings }),
    () => clock.now,
    () => 0.99,
  );
}

function ports(set: ReplicaSet, n: number, intent: 'read' | 'replica' = 'read'): number[] {
  return Array.from({ length: n }, () => set.pick(intent).pool.opts.address.port);
}

describe('ReplicaSet', () => {
  it('sends writes to the primary whatever the split', () => {
    const set = makeSet({ readWriteSplit: 'exclude_primary' });
    expect(set.pick('write')).toBe(set.primary);
    // A request kept on the primary that changes no data (a SET, SHOW, a read in a read-write block) too.
    expect(set.pick('read-primary')).toBe(set.primary);
  });

  it('round_robin over primary and replicas (include_primary), or replicas only (exclude_primary)', () => {
    expect(ports(makeSet({ loadBalancingStrategy: 'round_robin' }), 6)).toEqual([1, 2, 3, 1, 2, 3]);
    const only = makeSet({ loadBalancingStrategy: 'round_robin', readWriteSplit: 'exclude_primary' });
    expect(ports(only, 4)).toEqual([2, 3, 2, 3]);
  });

  it('weighted_round_robin in proportion to lb_weight; weight 0 never while others have weight', () => {
    const set = makeSet({ loadBalancingStrategy: 'weighted_round_robin' }, [0, 1, 3]);
    const got = ports(set, 8);
    expect(got.filter((p) => p === 1)).toHaveLength(0);
    expect(got.filter((p) => p === 2)).toHaveLength(2);
    expect(got.filter((p) => p === 3)).toHaveLength(6);
  });

  it('random uses the random source', () => {
    expect(ports(makeSet({ loadBalancingStrategy: 'random' }), 2)).toEqual([3, 3]);
  });

  it('prefer_primary: the primary unless a replica is asked for', () => {
    const set = makeSet({ readWriteSplit: 'prefer_primary', loadBalancingStrategy: 'round_robin' });
    expect(ports(set, 3)).toEqual([1, 1, 1]);
    expect(ports(set, 2, 'replica')).toEqual([2, 3]);
  });

  it('include_primary_if_replica_banned: the primary joins only while a replica is banned', () => {
    const clock = { now: 1000 };
    const set = makeSet(
      {
        readWriteSplit: 'include_primary_if_replica_banned',
        loadBalancingStrategy: 'round_robin',
        banTimeoutMs: 50,
      },
      [255, 255, 255],
      clock,
    );
    expect(ports(set, 2)).toEqual([2, 3]);
    expect(set.ban(set.replicas[0], 'down')).toBe(true);
    expect(ports(set, 2).sort()).toEqual([1, 3]);
    clock.now += 50;
    expect(set.isBanned(set.replicas[0])).toBe(false);
  });

  it('never bans the primary; every replica banned → the primary; bans expire after ban_timeout', () => {
    const clock = { now: 1000 };
    const set = makeSet({ readWriteSplit: 'exclude_primary', banTimeoutMs: 100 }, [255, 255, 255], clock);
    expect(set.ban(set.primary, 'x')).toBe(false);
    for (const m of set.replicas) set.ban(m, 'down');
    expect(set.ban(set.replicas[0], 'again')).toBe(false); // already banned
    expect(set.pick('read')).toBe(set.primary);
    expect(set.pick('replica')).toBe(set.primary);
    clock.now += 99;
    expect(set.pick('read')).toBe(set.primary);
    clock.now += 1;
    expect(set.replicas).toContain(set.pick('read'));
  });

  it('leaves out the members a request already failed on', () => {
    const set = makeSet({ readWriteSplit: 'exclude_primary', loadBalancingStrategy: 'round_robin' });
    const failed = new Set<Member>([set.replicas[0]]);
    expect(set.pick('read', failed)).toBe(set.replicas[1]);
    failed.add(set.replicas[1]);
    expect(set.pick('read', failed)).toBe(set.primary);
  });

  it("bans a replica whose pool lost a server in use (the pool's onLostInUse); the primary's pool has no such hook", () => {
    const clock = { now: 1000 };
    const set = makeSet(
      { readWriteSplit: 'exclude_primary', loadBalancingStrategy: 'round_robin' },
      undefined,
      clock,
    );
    expect(set.primary.pool.onLostInUse).toBeNull();
    // The server ended the session for the client's own timeouts: the replica is healthy, not banned.
    for (const code of ['25P03', '25P04', '57P05']) {
      set.replicas[0].pool.onLostInUse?.('server sent FATAL: terminating connection due to a timeout', code);
      expect(set.isBanned(set.replicas[0])).toBe(false);
    }
    set.replicas[0].pool.onLostInUse?.('server closed the connection', null);
    expect(set.isBanned(set.replicas[0])).toBe(true);
    expect(set.replicas[0].banReason).toContain('lost while in use');
    expect(ports(set, 3)).toEqual([3, 3, 3]);
  });

  it('BAN (manual) lasts until UNBAN, replaces a timed ban, and is never applied to the primary', () => {
    const clock = { now: 1000 };
    const set = makeSet({ banTimeoutMs: 100 }, [255, 255], clock);
    const [replica] = set.replicas;
    expect(set.ban(replica, 'down')).toBe(true);
    expect(set.banTimeLeftMs(replica)).toBe(100);
    expect(set.ban(replica, 'manual ban', true)).toBe(true);
    expect(set.banTimeLeftMs(replica)).toBeNull();
    clock.now += 1_000_000;
    expect(set.isBanned(replica)).toBe(true);
    expect(replica.banReason).toBe('manual ban');
    expect(set.ban(replica, 'manual ban', true)).toBe(false);
    expect(set.ban(set.primary, 'manual ban', true)).toBe(false);
    set.unban(replica);
    expect(set.banTimeLeftMs(replica)).toBe(0);
    expect(set.pick('replica')).toBe(replica);
  });

  it('counts bans in the shard stats', () => {
    const stats = new ShardStats('db', 0);
    const clock = { now: 1000 };
    const set = new ReplicaSet(
      pool(1, stats),
      db(255),
      [{ pool: pool(2, stats), db: db(255) }],
      () => ({ ...GENERAL_DEFAULTS, banTimeoutMs: 10 }),
      () => clock.now,
    );
    set.ban(set.replicas[0], 'down');
    set.ban(set.replicas[0], 'down again'); // already banned: not counted
    clock.now += 10;
    set.ban(set.replicas[0], 'down once more');
    expect(stats.health.bans).toBe(2);
  });

  it('the idle check bans a replica nothing answers on (counted), leaves a banned one and the primary alone', async () => {
    const stats = new ShardStats('db', 0);
    const deadPort = await freePort(); // nothing listens: the check's connect is refused
    const set = new ReplicaSet(
      pool(1, stats),
      db(255),
      [{ pool: pool(deadPort, stats), db: db(255) }],
      () => ({ ...GENERAL_DEFAULTS }),
    );
    await set.checkIdle();
    expect(set.isBanned(set.replicas[0])).toBe(true);
    expect(set.replicas[0].banReason).toMatch(/health check could not connect/);
    expect(stats.health).toEqual({ checks: 1, checkFailures: 1, bans: 1 });
    await set.checkIdle(); // banned: not checked again until the ban ends
    expect(stats.health.checks).toBe(1);
    await set.checkIdle(set.primary); // HEALTHCHECK of the primary (port 1: refused): counted, never banned
    expect(stats.health).toEqual({ checks: 2, checkFailures: 2, bans: 1 });
    expect(set.isBanned(set.primary)).toBe(false);
  });
});

describe('ReplicaSet.follow (role = "auto")', () => {
  function autoSet(roles: DatabaseConfig['role'][]): ReplicaSet {
    const [primaryRole, ...replicaRoles] = roles;
    return new ReplicaSet(
      pool(1),
      { ...db(255), role: primaryRole },
      replicaRoles.map((role, i) => ({ pool: pool(2 + i), db: { ...db(255), role } })),
      () => ({ ...GENERAL_DEFAULTS, readWriteSplit: 'exclude_primary' }),
    );
  }
  const up = { isInRecovery: false, lsn: 100n };
  const standby = { isInRecovery: true, lsn: 100n };

  it('moves the primary to the one member that reports it is one when the primary is gone or in recovery', () => {
    const set = autoSet(['auto', 'auto', 'auto']);
    const moved: number[] = [];
    set.onPrimaryChange = (m) => moved.push(m.pool.opts.address.port);
    const [a, b, c] = set.inConfigOrder;
    set.ban(set.replicas[0], 'down');
    [a.lsn, b.lsn, c.lsn] = [up, standby, standby];
    expect(set.follow()).toBe(false); // the primary is fine
    [a.lsn, b.lsn, c.lsn] = [up, up, standby];
    expect(set.follow()).toBe(false); // two claim it: the current one stays
    [a.lsn, b.lsn, c.lsn] = [null, null, standby];
    expect(set.follow()).toBe(false); // nobody claims it: nothing to follow (never promotes)
    [a.lsn, b.lsn, c.lsn] = [null, up, standby];
    expect(set.follow()).toBe(true);
    expect(set.primary).toBe(b);
    expect([b.role, b.pool.opts.role, a.role, a.pool.opts.role]).toEqual([
      'primary',
      'primary',
      'replica',
      'replica',
    ]);
    expect(set.isBanned(b)).toBe(false);
    expect(set.replicas).toEqual([c, a]);
    expect(moved).toEqual([2]);
    expect(set.pick('write')).toBe(b);
  });

  it('never moves the primary of a shard with a role = "primary" entry', () => {
    const set = autoSet(['primary', 'auto']);
    const [a, b] = set.inConfigOrder;
    [a.lsn, b.lsn] = [null, up];
    expect(set.follow()).toBe(false);
    expect(set.primary).toBe(a);
  });
});

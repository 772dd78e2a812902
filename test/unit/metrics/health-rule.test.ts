// The health endpoint's rule (issue 17): `down` when some database has pools and none of them can serve (no server of
// it reachable), `up` otherwise. Pure: plain pool views, no sockets.
import { describe, expect, it } from 'vitest';
import { isBroken, type HealthView } from '../../../src/metrics/health-server.js';

interface Member {
  pool: { total: number; lastConnectError: unknown };
}

const serving = (): Member => ({ pool: { total: 1, lastConnectError: null } });
const idleNeverFailed = (): Member => ({ pool: { total: 0, lastConnectError: null } });
const unreachable = (): Member => ({ pool: { total: 0, lastConnectError: new Error('ECONNREFUSED') } });

function database(shards: { primary: Member; replicas?: Member[]; banned?: Member[] }[]): HealthView {
  return {
    sets: shards.map((s) => ({
      primary: s.primary,
      replicas: s.replicas ?? [],
      isBanned: (m: Member) => (s.banned ?? []).includes(m),
    })),
  };
}

describe('health rule', () => {
  it('is up with no pools, and while every database has a pool that can serve', () => {
    expect(isBroken([])).toBe(false);
    expect(isBroken([database([{ primary: serving() }]), database([{ primary: idleNeverFailed() }])])).toBe(
      false,
    );
    // One shard's primary gone, the other's serving: the database can still serve (some of its requests).
    expect(isBroken([database([{ primary: unreachable() }, { primary: serving() }])])).toBe(false);
  });

  it('is down when one database cannot reach any of its servers, whatever the others do', () => {
    expect(isBroken([database([{ primary: unreachable() }])])).toBe(true);
    expect(isBroken([database([{ primary: serving() }]), database([{ primary: unreachable() }])])).toBe(true);
  });

  it('counts a banned replica as unusable, and a serving replica as a way to serve', () => {
    const replica = serving();
    expect(isBroken([database([{ primary: unreachable(), replicas: [replica] }])])).toBe(false);
    expect(isBroken([database([{ primary: unreachable(), replicas: [replica], banned: [replica] }])])).toBe(
      true,
    );
  });
});

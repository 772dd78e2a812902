// replica-lag.ts: the monitor's row, lag in bytes and in time since the primary was first seen past the replica's
// replay position, and the ban thresholds.
import { describe, expect, it } from 'vitest';
import { lagBanReason, PrimaryHistory, readLsnRow } from '../../../src/backend/replica-lag.js';

describe('readLsnRow', () => {
  it('reads recovery and the position; refuses what is not a row of LSN_QUERY', () => {
    expect(readLsnRow(['t', '123'])).toEqual({ isInRecovery: true, lsn: 123n });
    expect(readLsnRow(['f', '18446744073709551615'])).toEqual({
      isInRecovery: false,
      lsn: 18446744073709551615n,
    });
    expect(readLsnRow(['t', null])).toEqual({ isInRecovery: true, lsn: null });
    expect(readLsnRow(['f', '0/16B3748'])).toBeNull();
    expect(readLsnRow(undefined)).toBeNull();
  });
});

describe('PrimaryHistory', () => {
  it('measures bytes behind the primary and time since the primary first passed the replay position', () => {
    const h = new PrimaryHistory();
    expect(h.lagOf(10n, 0)).toEqual({ bytes: 0, ms: 0 });
    h.record(100n, 1000);
    h.record(100n, 2000); // no new position: the first sighting stays
    h.record(300n, 3000);
    expect(h.lagOf(300n, 5000)).toEqual({ bytes: 0, ms: 0 });
    expect(h.lagOf(400n, 5000)).toEqual({ bytes: 0, ms: 0 });
    expect(h.lagOf(150n, 5000)).toEqual({ bytes: 150, ms: 2000 });
    expect(h.lagOf(50n, 5000)).toEqual({ bytes: 250, ms: 4000 });
  });

  it('forgets positions every replica has passed, keeping the current one', () => {
    const h = new PrimaryHistory();
    h.record(100n, 1000);
    h.record(200n, 2000);
    h.record(300n, 3000);
    h.trim(200n);
    expect(h.lagOf(250n, 5000)).toEqual({ bytes: 50, ms: 2000 });
    h.trim(1000n);
    expect(h.current).toBe(300n);
    expect(h.lagOf(250n, 5000)).toEqual({ bytes: 50, ms: 2000 });
  });
});

describe('lagBanReason', () => {
  it('bans at or above a threshold, never a replica with no bytes to replay, nothing when off', () => {
    expect(lagBanReason({ bytes: 10, ms: 5 }, null, null)).toBeNull();
    expect(lagBanReason({ bytes: 10, ms: 5 }, null, 10)).toContain(
      '10 bytes reached ban_replica_lag_bytes (10)',
    );
    expect(lagBanReason({ bytes: 9, ms: 5 }, null, 10)).toBeNull();
    expect(lagBanReason({ bytes: 9, ms: 5 }, 5, 10)).toContain('5 ms reached ban_replica_lag (5 ms)');
    expect(lagBanReason({ bytes: 0, ms: 50 }, 5, 0)).toBeNull();
  });
});

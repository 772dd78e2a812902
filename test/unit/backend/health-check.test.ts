// When health checks are due (health-check.ts), with the clock passed in: before checkout at most every
// healthcheck_interval per server; idle checks after idle_healthcheck_delay, then every idle_healthcheck_interval.
import { describe, expect, it } from 'vitest';
import { isCheckoutCheckDue, nextIdleCheckInMs } from '../../../src/backend/health-check.js';

describe('isCheckoutCheckDue', () => {
  it('is due once healthcheck_interval has passed since the server last proved healthy', () => {
    expect(isCheckoutCheckDue(1000, 1000 + 29_999, 30_000)).toBe(false);
    expect(isCheckoutCheckDue(1000, 1000 + 30_000, 30_000)).toBe(true);
  });

  it('healthcheck_interval 0 checks before every checkout', () => {
    expect(isCheckoutCheckDue(1000, 1000, 0)).toBe(true);
  });
});

describe('nextIdleCheckInMs', () => {
  const settings = { idleHealthcheckIntervalMs: 30_000, idleHealthcheckDelayMs: 5000 };

  it('waits idle_healthcheck_delay after start for the first check', () => {
    expect(nextIdleCheckInMs(1000, null, 1000, settings)).toBe(5000);
    expect(nextIdleCheckInMs(1000, null, 4000, settings)).toBe(2000);
    expect(nextIdleCheckInMs(1000, null, 9000, settings)).toBe(0);
  });

  it('then every idle_healthcheck_interval after the previous check ended', () => {
    expect(nextIdleCheckInMs(1000, 50_000, 50_000, settings)).toBe(30_000);
    expect(nextIdleCheckInMs(1000, 50_000, 70_000, settings)).toBe(10_000);
    expect(nextIdleCheckInMs(1000, 50_000, 90_000, settings)).toBe(0);
  });

  it('idle_healthcheck_interval 0 turns idle checks off', () => {
    expect(nextIdleCheckInMs(1000, null, 1000, { ...settings, idleHealthcheckIntervalMs: 0 })).toBeNull();
  });
});

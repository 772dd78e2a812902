// The advisory-lock keys of an instance id: the same id always gives the same two non-negative int4 keys (what a
// second proxy must compute to find the first one's lock), different ids different keys.
import { describe, expect, it } from 'vitest';
import { instanceLockApplicationName, instanceLockKeys } from '../../../src/txn/instance-lock.js';

describe('instanceLockKeys', () => {
  it('is stable, two non-negative int4 values per id, different for different ids', () => {
    expect(instanceLockKeys('proxy_a')).toEqual(instanceLockKeys('proxy_a'));
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const keys = instanceLockKeys(`orders_api_shardgate_${i}_6432`);
      for (const k of keys) {
        expect(Number.isInteger(k)).toBe(true);
        expect(k).toBeGreaterThanOrEqual(0);
        expect(k).toBeLessThanOrEqual(2 ** 31 - 1);
      }
      seen.add(keys.join(','));
    }
    expect(seen.size).toBe(1000);
  });

  it('names the lock connection after the id and the process, within PostgreSQL’s 63-byte application_name', () => {
    const id = 'x'.repeat(40);
    expect(instanceLockApplicationName(id, 'abcde')).toBe(`shardgate-lock:${id}:abcde`);
    expect(Buffer.byteLength(instanceLockApplicationName(id, 'abcde'))).toBeLessThanOrEqual(63);
  });
});

// The default instance_id: different host names (also long ones sharing their first 32 characters, or differing only
// in characters that are replaced) give different ids, the same host and port always the same one, only
// [A-Za-z0-9_] and at most 40 characters; and the former default (host name cut to 32) exactly as earlier versions
// made it, flagged ambiguous when the cut dropped characters.
import { describe, expect, it } from 'vitest';
import {
  defaultInstanceId,
  formerDefaultInstanceId,
  INSTANCE_ID_MAX_LENGTH,
  INSTANCE_ID_PATTERN,
} from '../../../src/config/instance-id.js';
import { makeGid, parseGid, TxidSource } from '../../../src/txn/gid.js';

const POD_A = 'orders-api-shardgate-proxy-7c9d8f6b5d-x8k2p';
const POD_B = 'orders-api-shardgate-proxy-7c9d8f6b5d-q9zlm';

/** How shardgate before this change derived the default id (src/config/load.ts readInstanceId), verbatim. */
function oldDefault(hostName: string, port: number): string {
  const host = hostName.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 32) || 'host';
  return `${host}_${port}`;
}

const HOST_NAMES = [
  '',
  'vm',
  'db-proxy-1',
  'ip-10-0-1-23.eu-west-1.compute.internal',
  POD_A,
  POD_B,
  'shardgate-0',
  'shardgate-0.shardgate.orders.svc.cluster.local',
  '---',
  '_leading_and_trailing_',
  'ünïcödé-höst',
  'x'.repeat(253),
];

describe('defaultInstanceId', () => {
  it('tells apart pods whose names share their first 32 characters (the old default did not)', () => {
    expect(POD_A.slice(0, 32)).toBe(POD_B.slice(0, 32));
    expect(oldDefault(POD_A, 6432)).toBe(oldDefault(POD_B, 6432));
    expect(defaultInstanceId(POD_A, 6432)).not.toBe(defaultInstanceId(POD_B, 6432));
  });

  it('tells apart host names that differ only in replaced characters or in case', () => {
    const ids = ['a-b', 'a.b', 'a_b', 'a--b', 'A-B'].map((h) => defaultInstanceId(h, 6432));
    expect(new Set(ids).size).toBe(5);
  });

  it('gives different ids for different ports, and different ids for 1,000 pod names of one Deployment', () => {
    expect(defaultInstanceId('vm', 6432)).not.toBe(defaultInstanceId('vm', 6433));
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++)
      ids.add(defaultInstanceId(`orders-api-shardgate-proxy-7c9d8f6b5d-${i}`, 6432));
    expect(ids.size).toBe(1000);
  });

  it('is stable: the same host and port give the same id (here: a known value)', () => {
    expect(defaultInstanceId(POD_A, 6432)).toBe(defaultInstanceId(POD_A, 6432));
    // Pinned: a change to the derivation would orphan every running proxy's prepared transactions.
    expect(defaultInstanceId(POD_A, 6432)).toBe('orders_api_shardgate_0tf1vyjnumxag_6432');
    expect(defaultInstanceId('vm', 0)).toBe('vm_1e9dt4uv40slk_0');
  });

  it('keeps a readable prefix of the host name, holds only [A-Za-z0-9_] and at most 40 characters', () => {
    expect(defaultInstanceId(POD_A, 6432)).toMatch(/^orders_api_shardgate_[0-9a-z]{13}_6432$/);
    expect(defaultInstanceId('ip-10-0-1-23.eu-west-1.compute.internal', 6432)).toMatch(
      /^ip_10_0_1_23_eu_west_[0-9a-z]{13}_6432$/,
    );
    expect(defaultInstanceId('', 6432)).toMatch(/^host_[0-9a-z]{13}_6432$/);
    expect(defaultInstanceId('---', 6432)).toMatch(/^host_[0-9a-z]{13}_6432$/);
    for (const host of HOST_NAMES) {
      for (const port of [0, 1, 6432, 65535]) {
        const id = defaultInstanceId(host, port);
        expect(id, host).toMatch(INSTANCE_ID_PATTERN); // what a configured instance_id must match, too
        expect(id.length).toBeLessThanOrEqual(INSTANCE_ID_MAX_LENGTH);
        expect(id).not.toMatch(/__/);
      }
    }
  });

  it('makes GIDs that parse back to it and stay far within PostgreSQL’s 200 bytes', () => {
    const id = defaultInstanceId('x'.repeat(253), 65535);
    const gid = makeGid(id, new TxidSource(Number.MAX_SAFE_INTEGER).nextTxid(), 65535);
    expect(parseGid(gid)?.instanceId).toBe(id);
    expect(Buffer.byteLength(gid)).toBeLessThan(100);
  });
});

describe('formerDefaultInstanceId', () => {
  it('is exactly what earlier versions made: the host name cut to 32 characters, then the port', () => {
    for (const host of HOST_NAMES) {
      for (const port of [0, 6432])
        expect(formerDefaultInstanceId(host, port).id).toBe(oldDefault(host, port));
    }
    expect(formerDefaultInstanceId(POD_A, 6432).id).toBe('orders_api_shardgate_proxy_7c9d8_6432');
  });

  it('is ambiguous when the cut dropped characters (other hosts may have made the same id), else not', () => {
    expect(formerDefaultInstanceId(POD_A, 6432).isAmbiguous).toBe(true);
    expect(formerDefaultInstanceId('vm', 6432).isAmbiguous).toBe(false);
    expect(formerDefaultInstanceId('a'.repeat(32), 6432).isAmbiguous).toBe(false);
    expect(formerDefaultInstanceId('a'.repeat(33), 6432).isAmbiguous).toBe(true);
  });

  it('never equals the new default of the same host and port', () => {
    for (const host of HOST_NAMES)
      expect(formerDefaultInstanceId(host, 6432).id).not.toBe(defaultInstanceId(host, 6432));
  });
});

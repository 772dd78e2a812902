// Unit tests for decision-log records: the byte layout, round trips, the torn/corrupt/end verdicts at every cut,
// shape validation of what is read and written, and the search for valid data after a break.
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  MAX_RECORD_PAYLOAD_BYTES,
  decodeRecords,
  encodeRecord,
  findNextRecord,
  type CommitRecord,
  type LogRecord,
} from '../../../src/txn/log/record.js';

const COMMIT: CommitRecord = {
  kind: 'commit',
  txid: 'sg_a1_7',
  database: 'app',
  user: 'alice',
  participants: [
    { shard: 0, gid: 'sg_a1_7_0' },
    { shard: 3, gid: 'sg_a1_7_3' },
  ],
  at: 1_700_000_000_123,
};
const DONE: LogRecord = { kind: 'done', txid: 'sg_a1_7' };

/** A record whose payload is `json` verbatim, with a correct header (for shape tests). */
function framed(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(8);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([header, payload]);
}

describe('encodeRecord', () => {
  it('writes length, CRC-32 of the payload, then the JSON payload', () => {
    const buf = encodeRecord(COMMIT);
    const payload = buf.subarray(8);
    expect(buf.readUInt32BE(0)).toBe(payload.length);
    expect(buf.readUInt32BE(4)).toBe(crc32(payload));
    expect(JSON.parse(payload.toString('utf8'))).toEqual(COMMIT);
  });

  it('drops unknown fields', () => {
    const withExtra = { ...COMMIT, secret: 'x', participants: [{ shard: 1, gid: 'g', extra: true }] };
    const decoded = decodeRecords(encodeRecord(withExtra));
    expect(decoded.records).toEqual([{ ...COMMIT, participants: [{ shard: 1, gid: 'g' }] }]);
  });

  it.each([
    ['an empty txid', { ...COMMIT, txid: '' }],
    ['a NaN time', { ...COMMIT, at: Number.NaN }],
    ['a negative shard', { ...COMMIT, participants: [{ shard: -1, gid: 'g' }] }],
    ['a fractional shard', { ...COMMIT, participants: [{ shard: 1.5, gid: 'g' }] }],
    ['an unknown kind', { kind: 'abort', txid: 't' }],
  ])('refuses %s', (_name, record) => {
    expect(() => encodeRecord(record as LogRecord)).toThrow(TypeError);
  });

  it('refuses a record over the payload cap', () => {
    const big = { ...COMMIT, user: 'u'.repeat(MAX_RECORD_PAYLOAD_BYTES) };
    expect(() => encodeRecord(big)).toThrow(RangeError);
  });

  it('round-trips non-ASCII and lone surrogates', () => {
    const odd = { ...COMMIT, database: 'bä\u{1F600}', user: 'x\uD800y' };
    expect(decodeRecords(encodeRecord(odd)).records).toEqual([odd]);
  });
});

describe('decodeRecords', () => {
  const records: LogRecord[] = [COMMIT, DONE, { ...COMMIT, txid: 'sg_a1_8' }];
  const encoded = records.map((r) => encodeRecord(r));
  const all = Buffer.concat(encoded);
  const lastStart = all.length - encoded[2].length;

  it('decodes consecutive records to the end', () => {
    expect(decodeRecords(all)).toEqual({ records, validBytes: all.length, stop: 'end', reason: '' });
    expect(decodeRecords(Buffer.alloc(0))).toEqual({ records: [], validBytes: 0, stop: 'end', reason: '' });
  });

  it('reports a torn tail at every cut inside the last record', () => {
    for (let cut = lastStart + 1; cut < all.length; cut++) {
      const decoded = decodeRecords(all.subarray(0, cut));
      expect(decoded.stop, `cut at ${cut}`).toBe('torn');
      expect(decoded.validBytes).toBe(lastStart);
      expect(decoded.records).toEqual(records.slice(0, 2));
    }
  });

  it('reports a CRC mismatch as corrupt at the record start', () => {
    const damaged = Buffer.from(all);
    damaged[encoded[0].length + 12] ^= 0x01;
    const decoded = decodeRecords(damaged);
    expect(decoded).toMatchObject({ stop: 'corrupt', validBytes: encoded[0].length, reason: 'CRC mismatch' });
    expect(decoded.records).toEqual([COMMIT]);
  });

  it.each([
    ['not JSON', '{"kind":"done",'],
    ['an array', '[1,2]'],
    ['an unknown kind', '{"kind":"abort","txid":"t"}'],
    [
      'a string shard',
      '{"kind":"commit","txid":"t","database":"d","user":"u","participants":[{"shard":"1","gid":"g"}],"at":1}',
    ],
    ['missing participants', '{"kind":"commit","txid":"t","database":"d","user":"u","at":1}'],
    ['a missing txid', '{"kind":"done"}'],
  ])('reports a payload with %s as corrupt even with a good CRC', (_name, json) => {
    const decoded = decodeRecords(Buffer.concat([encoded[0], framed(json)]));
    expect(decoded).toMatchObject({ stop: 'corrupt', validBytes: encoded[0].length, records: [COMMIT] });
  });

  it('reports a length over the cap as corrupt, not as a torn tail', () => {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(MAX_RECORD_PAYLOAD_BYTES + 1, 0);
    expect(decodeRecords(header)).toMatchObject({ stop: 'corrupt', validBytes: 0 });
  });
});

describe('findNextRecord', () => {
  const a = encodeRecord(COMMIT);
  const b = encodeRecord(DONE);

  it('finds a valid record after garbage', () => {
    const garbage = Buffer.from([0, 0, 0, 40, 1, 2, 3, 4, 0x7b, 0x7d, 0, 0, 0]);
    expect(findNextRecord(Buffer.concat([a, garbage, b]), a.length + 1)).toBe(a.length + garbage.length);
  });

  it('finds nothing in a torn tail', () => {
    const all = Buffer.concat([a, b]);
    for (let cut = a.length + 1; cut < all.length; cut++) {
      expect(findNextRecord(all.subarray(0, cut), a.length + 1)).toBe(-1);
    }
    expect(findNextRecord(Buffer.concat([a, Buffer.alloc(100)]), a.length + 1)).toBe(-1);
  });
});

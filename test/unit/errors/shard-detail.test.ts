// Unit tests for withShardInDetail: a shard's ErrorResponse, byte for byte, with the shard named in its Detail.
import { describe, expect, it } from 'vitest';
import { withShardInDetail } from '../../../src/errors/shard-detail.js';

function errorResponse(fields: [string, string][]): Buffer {
  const body = Buffer.concat([...fields.map(([k, v]) => Buffer.from(`${k}${v}\0`)), Buffer.from([0])]);
  const head = Buffer.from([0x45, 0, 0, 0, 0]);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function fields(frame: Buffer): string[] {
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  return frame.toString('utf8', 5, frame.length - 2).split('\0');
}

describe('withShardInDetail', () => {
  it('appends "(shard N)" to a Detail and keeps every other field as it was', () => {
    const frame = errorResponse([
      ['S', 'ERROR'],
      ['C', '23505'],
      ['M', 'duplicate key'],
      ['D', 'Key (id)=(1) already exists.'],
      ['n', 'users_pkey'],
    ]);
    expect(fields(withShardInDetail(frame, 2))).toEqual([
      'SERROR',
      'C23505',
      'Mduplicate key',
      'DKey (id)=(1) already exists. (shard 2)',
      'nusers_pkey',
    ]);
  });

  it('adds a Detail "shard N" when there is none, and fills an empty one', () => {
    const bare = errorResponse([
      ['S', 'ERROR'],
      ['M', 'boom'],
    ]);
    expect(fields(withShardInDetail(bare, 0))).toEqual(['SERROR', 'Mboom', 'Dshard 0']);
    const empty = errorResponse([['D', '']]);
    expect(fields(withShardInDetail(empty, 1))).toEqual(['Dshard 1']);
  });

  it('forwards a malformed frame (an unterminated field) unchanged', () => {
    const frame = Buffer.from([0x45, 0, 0, 0, 8, 0x4d, 0x61, 0x62, 0x63]);
    expect(withShardInDetail(frame, 1)).toBe(frame);
  });
});

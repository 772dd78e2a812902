// A shard's ErrorResponse as the client gets it from a statement that ran on several shards: byte for byte, with the
// shard named in its Detail field. Used by the reply merger, the fan-out's failed batches and the 2PC coordinator.

import { Buffer } from 'node:buffer';

const DETAIL_FIELD = 0x44; // 'D'

/** The shard's ErrorResponse with "(shard N)" appended to its Detail field, or a Detail "shard N" added. */
export function withShardInDetail(frame: Buffer, shard: number): Buffer {
  const end = 1 + frame.readInt32BE(1);
  let pos = 5;
  while (pos < end && frame[pos] !== 0) {
    const valueEnd = frame.indexOf(0, pos + 1);
    if (valueEnd < 0 || valueEnd >= end) return frame; // malformed: forward as it is
    if (frame[pos] === DETAIL_FIELD) {
      const note = valueEnd === pos + 1 ? `shard ${shard}` : ` (shard ${shard})`;
      return insertBytes(frame, end, valueEnd, Buffer.from(note, 'latin1'));
    }
    pos = valueEnd + 1;
  }
  if (pos >= end) return frame;
  return insertBytes(frame, end, pos, Buffer.from(`Dshard ${shard}\0`, 'latin1'));
}

function insertBytes(frame: Buffer, end: number, at: number, extra: Buffer): Buffer {
  const out = Buffer.concat([frame.subarray(0, at), extra, frame.subarray(at, end)]);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

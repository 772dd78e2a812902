// Frames of one extended-protocol request built in memory (for routing tests and bench/router-micro.ts): the unnamed
// statement's Parse, a Bind with text parameters, a Describe of the portal, Execute, and Sync.
import { Frontend } from '../../src/protocol/codes.js';
import { SYNC } from '../../src/protocol/messages.js';
import { MessageWriter } from '../../src/protocol/writer.js';

/** Parse/Bind/Describe/Execute of `sql` with text `params`, then `extra` frames, then Sync. */
export function extendedFrames(
  sql: string,
  params: readonly string[] = [],
  extra: readonly Buffer[] = [],
): Buffer[] {
  const parse = new MessageWriter().cstring('').cstring(sql).int16(0).frame(Frontend.Parse);
  const b = new MessageWriter().cstring('').cstring('').int16(0).int16(params.length);
  for (const p of params) b.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  const bind = b.int16(0).frame(Frontend.Bind);
  const describe = new MessageWriter().int8(0x50).cstring('').frame(Frontend.Describe);
  const execute = new MessageWriter().cstring('').int32(0).frame(Frontend.Execute);
  return [parse, bind, describe, execute, ...extra, SYNC];
}

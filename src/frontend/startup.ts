// Decoding of the untyped startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
import { StartupCode } from '../protocol/codes.js';

/** PostgreSQL's own limit for a startup packet. */
export const MAX_STARTUP_PACKET_BYTES = 10_000;

export type StartupPacket =
  | { kind: 'startup'; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number };

export type StartupResult =
  | { ok: true; packet: StartupPacket; rest: Buffer }
  | { ok: false; incomplete: true }
  | { ok: false; incomplete: false; error: string };

/** Try to read one startup-phase packet from the front of `buf`. */
export function readStartupPacket(buf: Buffer): StartupResult {
  if (buf.length < 4) return { ok: false, incomplete: true };
  const len = buf.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_PACKET_BYTES) {
    return { ok: false, incomplete: false, error: `invalid startup packet length ${len}` };
  }
  if (buf.length < len) return { ok: false, incomplete: true };
  const code = buf.readInt32BE(4);
  const rest = buf.subarray(len);
  switch (code) {
    case StartupCode.SSLRequest:
      return { ok: true, packet: { kind: 'ssl' }, rest };
    case StartupCode.GSSENCRequest:
      return { ok: true, packet: { kind: 'gssenc' }, rest };
    case StartupCode.CancelRequest:
      if (len !== 16) return { ok: false, incomplete: false, error: 'invalid CancelRequest length' };
      return {
        ok: true,
        packet: { kind: 'cancel', pid: buf.readInt32BE(8), secret: buf.readInt32BE(12) },
        rest,
      };
    default: {
      const major = code >> 16;
      const minor = code & 0xffff;
      if (major !== 3) {
        return {
          ok: false,
          incomplete: false,
          error: `unsupported frontend protocol ${major}.${minor}: server supports 3.0`,
        };
      }
      const params = parseParams(buf.subarray(8, len));
      if (params === null) return { ok: false, incomplete: false, error: 'malformed startup packet' };
      return { ok: true, packet: { kind: 'startup', params }, rest };
    }
  }
}

function parseParams(body: Buffer): Map<string, string> | null {
  const params = new Map<string, string>();
  let i = 0;
  while (i < body.length) {
    if (body[i] === 0) return i === body.length - 1 ? params : null;
    const kEnd = body.indexOf(0, i);
    if (kEnd < 0) return null;
    const vEnd = body.indexOf(0, kEnd + 1);
    if (vEnd < 0) return null;
    params.set(body.toString('utf8', i, kEnd), body.toString('utf8', kEnd + 1, vEnd));
    i = vEnd + 1;
  }
  return null; // missing the final terminator
}

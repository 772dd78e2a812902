// Decoding of the untyped startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
// Bad packets are judged as PostgreSQL's ProcessStartupPacket judges them (postmaster.c): an impossible length or a
// CancelRequest of the wrong size is only logged there and the connection closed without a reply (`isSilent`); an
// unsupported protocol or a bad parameter list gets a FATAL ErrorResponse first.
import { StartupCode } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState, type SqlStateCode } from '../errors/sqlstate.js';

/**
 * PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the limit on the packet after its length word, so the whole packet may be
 * up to 4 bytes longer.
 */
export const MAX_STARTUP_PACKET_BYTES = 10_000;
/** The smallest startup packet: the length word and a protocol version or request code. */
const MIN_STARTUP_PACKET_BYTES = 8;

export type StartupPacket =
  | { kind: 'startup'; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number };

export type StartupResult =
  | { ok: true; packet: StartupPacket; rest: Buffer }
  | { ok: false; incomplete: true }
  | {
      ok: false;
      incomplete: false;
      error: string;
      /** The SQLSTATE of the FATAL to send (08P01 or 0A000). */
      code: SqlStateCode;
      /** PostgreSQL closes without a reply (it only logs the error). */
      isSilent: boolean;
    };

function refused(
  error: string,
  isSilent: boolean,
  code: SqlStateCode = SqlState.ProtocolViolation,
): StartupResult {
  return { ok: false, incomplete: false, error, code, isSilent };
}

/**
 * PostgreSQL's message for a protocol version it does not speak (FATAL 0A000), also its answer to an SSLRequest or
 * GSSENCRequest repeated after the first: the request code is then read as a version.
 */
export function unsupportedProtocol(code: number): string {
  return `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`;
}

/** Try to read one startup-phase packet from the front of `buf`. */
export function readStartupPacket(buf: Buffer): StartupResult {
  if (buf.length < 4) return { ok: false, incomplete: true };
  const len = buf.readInt32BE(0);
  if (len < MIN_STARTUP_PACKET_BYTES || len - 4 > MAX_STARTUP_PACKET_BYTES) {
    return refused(`invalid startup packet length ${len}`, true);
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
      if (len !== 16) return refused(`invalid CancelRequest length ${len}`, true);
      return {
        ok: true,
        packet: { kind: 'cancel', pid: buf.readInt32BE(8), secret: buf.readInt32BE(12) },
        rest,
      };
    default: {
      if (code >>> 16 !== 3) return refused(unsupportedProtocol(code), false, SqlState.FeatureNotSupported);
      const params = parseParams(buf.subarray(8, len));
      if (params === null) {
        return refused('invalid startup packet layout: expected terminator as last byte', false);
      }
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

/** A replication connection's kind: physical (`replication=true`), logical (`replication=database`), or none. */
export type ReplicationMode = 'none' | 'physical' | 'logical';

/**
 * The `replication` startup parameter as PostgreSQL reads it: "database", or a boolean in parse_bool's spellings
 * (any case, unique prefixes of true/false/yes/no, on/off, 1/0); anything else is FATAL 22023.
 */
export function replicationMode(value: string | undefined): ReplicationMode | PgError {
  if (value === undefined) return 'none';
  if (value === 'database') return 'logical';
  const flag = parseBool(value);
  if (flag !== null) return flag ? 'physical' : 'none';
  return new PgError(
    'FATAL',
    SqlState.InvalidParameterValue,
    `invalid value for parameter "replication": "${value}"`,
    undefined,
    'Valid values are: "false", 0, "true", 1, "database".',
  );
}

/** PostgreSQL's parse_bool. */
function parseBool(value: string): boolean | null {
  const v = value.toLowerCase();
  const isPrefixOf = (word: string, minLength = 1): boolean =>
    v.length >= minLength && v.length <= word.length && word.startsWith(v);
  if (isPrefixOf('true') || isPrefixOf('yes') || isPrefixOf('on', 2) || v === '1') return true;
  if (isPrefixOf('false') || isPrefixOf('no') || isPrefixOf('off', 2) || v === '0') return false;
  return null;
}

// Builders for the messages shardgate itself writes (to clients, and to servers outside the forwarded stream).
// Body-less and fixed messages are prebuilt constants.
import { Buffer } from 'node:buffer';
import { AuthCode, Backend, Frontend, StartupCode } from './codes.js';
import { MessageWriter } from './writer.js';

function fixed(code: number, body: number[] = []): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = code;
  b.writeInt32BE(4 + body.length, 1);
  for (let i = 0; i < body.length; i++) b[5 + i] = body[i];
  return b;
}

export const AUTH_OK = (() => {
  const b = Buffer.alloc(9);
  b[0] = Backend.Authentication;
  b.writeInt32BE(8, 1);
  b.writeInt32BE(AuthCode.Ok, 5);
  return b;
})();
export const READY_IDLE = fixed(Backend.ReadyForQuery, [0x49]);
export const READY_IN_TX = fixed(Backend.ReadyForQuery, [0x54]);
export const READY_FAILED = fixed(Backend.ReadyForQuery, [0x45]);
export const PARSE_COMPLETE = fixed(Backend.ParseComplete);
export const BIND_COMPLETE = fixed(Backend.BindComplete);
export const CLOSE_COMPLETE = fixed(Backend.CloseComplete);
export const NO_DATA = fixed(Backend.NoData);
/** ParameterDescription with no parameters. */
export const NO_PARAMETERS = fixed(Backend.ParameterDescription, [0, 0]);
export const SYNC = fixed(Frontend.Sync);
export const FLUSH = fixed(Frontend.Flush);
export const TERMINATE = fixed(Frontend.Terminate);
export const SSL_NO = Buffer.from('N');
export const SSL_YES = Buffer.from('S');

export function readyForQuery(status: number): Buffer {
  return status === 0x49 ? READY_IDLE : status === 0x54 ? READY_IN_TX : READY_FAILED;
}

export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** 1-based character position in the query text. */
  position?: number;
}

/** ErrorResponse (or NoticeResponse with `code = Backend.NoticeResponse`). */
export function errorResponse(f: ErrorFields, msgCode: number = Backend.ErrorResponse): Buffer {
  const w = new MessageWriter(64 + f.message.length);
  w.int8(0x53).cstring(f.severity); // S
  w.int8(0x56).cstring(f.severity); // V (non-localized severity)
  w.int8(0x43).cstring(f.code); // C
  w.int8(0x4d).cstring(f.message); // M
  if (f.detail) w.int8(0x44).cstring(f.detail); // D
  if (f.hint) w.int8(0x48).cstring(f.hint); // H
  if (f.position !== undefined) w.int8(0x50).cstring(String(f.position)); // P
  w.int8(0);
  return w.frame(msgCode);
}

export function parameterStatus(name: string, value: string): Buffer {
  return new MessageWriter(name.length + value.length + 8)
    .cstring(name)
    .cstring(value)
    .frame(Backend.ParameterStatus);
}

/**
 * ParameterStatus messages for every entry of `params`, in its order, in one Buffer (the login replies); `valueOf`
 * may give another value for an entry. Written in place: no message objects, no array of parts.
 */
export function parameterStatuses(
  params: ReadonlyMap<string, string>,
  valueOf?: (name: string, value: string) => string,
): Buffer {
  // forEach, not for…of: no [name, value] array per entry.
  let size = 0;
  params.forEach((value, name) => {
    const v = valueOf === undefined ? value : valueOf(name, value);
    size += 7 + Buffer.byteLength(name) + Buffer.byteLength(v);
  });
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  params.forEach((value, name) => {
    const v = valueOf === undefined ? value : valueOf(name, value);
    const start = p;
    out[p] = Backend.ParameterStatus;
    p += 5;
    p += out.write(name, p);
    out[p++] = 0;
    p += out.write(v, p);
    out[p++] = 0;
    out.writeInt32BE(p - start - 1, start + 1);
  });
  return out;
}

export function backendKeyData(pid: number, secret: number): Buffer {
  return new MessageWriter(16).int32(pid).int32(secret).frame(Backend.BackendKeyData);
}

export const AUTH_CLEARTEXT = new MessageWriter(8)
  .int32(AuthCode.CleartextPassword)
  .frame(Backend.Authentication);

export function authenticationMd5(salt: Buffer): Buffer {
  return new MessageWriter(16).int32(AuthCode.MD5Password).bytes(salt).frame(Backend.Authentication);
}

export function authenticationSasl(mechanisms: string[]): Buffer {
  const w = new MessageWriter(64).int32(AuthCode.SASL);
  for (const m of mechanisms) w.cstring(m);
  return w.int8(0).frame(Backend.Authentication);
}

export function authenticationSaslContinue(data: string): Buffer {
  return new MessageWriter(data.length + 16)
    .int32(AuthCode.SASLContinue)
    .bytes(Buffer.from(data))
    .frame(Backend.Authentication);
}

export function authenticationSaslFinal(data: string): Buffer {
  return new MessageWriter(data.length + 16)
    .int32(AuthCode.SASLFinal)
    .bytes(Buffer.from(data))
    .frame(Backend.Authentication);
}

/** Simple-protocol Query message. */
export function query(sql: string): Buffer {
  return new MessageWriter(sql.length + 8).cstring(sql).frame(Frontend.Query);
}

/** CancelRequest packet (16 bytes, untyped). */
export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(StartupCode.CancelRequest, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(secret, 12);
  return b;
}

/** StartupMessage (protocol 3.0) with the given parameters. */
export function startupMessage(params: Record<string, string>): Buffer {
  const w = new MessageWriter(256);
  w.int32(StartupCode.ProtocolV3);
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
  w.int8(0);
  return w.frameUntyped();
}

/** Parse message: statement name, query text, parameter type OIDs given as the raw int16+int32[] tail. */
export function parseMessage(name: string, queryText: string, paramTypesTail: Uint8Array): Buffer {
  return new MessageWriter(queryText.length + name.length + paramTypesTail.length + 8)
    .cstring(name)
    .cstring(queryText)
    .bytes(paramTypesTail)
    .frame(Frontend.Parse);
}

export function closeStatement(name: string): Buffer {
  return new MessageWriter(name.length + 8).int8(0x53).cstring(name).frame(Frontend.Close);
}

export function commandComplete(tag: string): Buffer {
  return new MessageWriter(16 + tag.length).cstring(tag).frame(Backend.CommandComplete);
}

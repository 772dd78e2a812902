// The protocol fuzzer's comparison: replies normalized to what must match PostgreSQL's (message types, ErrorResponse
// severity + SQLSTATE, CommandComplete tags, RowDescription names/types/formats, DataRow contents, ReadyForQuery status,
// whether the connection closed), and the ONE list of what legitimately differs through the proxy, each with its reason.
import { errorFields, type RawMessage } from '../raw-client.js';
import type { FuzzCase } from './generate.js';

/** What a peer answered to a case. */
export interface Outcome {
  messages: RawMessage[];
  /** The peer closed the connection. */
  isClosed: boolean;
  /** The reply stopped short of PostgreSQL's and the connection stayed open past the timeout. */
  isHung: boolean;
}

export type TargetKind = 'transaction' | 'session' | 'sharded';

/**
 * What legitimately differs, in one place (keep it short; each entry says why):
 * - ParameterStatus ('S') is dropped: reports of server parameters are not part of a request's answer the proxy
 *   promises to repeat byte for byte (it sends its own at login, and in transaction mode a later server may report
 *   again what the client was already told).
 * - NoticeResponse ('N') keeps severity + SQLSTATE only, ErrorResponse likewise: message texts differ (the proxy's own
 *   errors have their own words, and localization is the server's).
 * - A protocol violation that ends the connection (PostgreSQL: FATAL 08P01, or a silent close for an impossible
 *   length): the proxy refuses the broken frame as soon as it reads it, so the messages before it in the same write
 *   that it had not sent on yet get no reply — PostgreSQL answers them first. The proxy's replies must then be a
 *   prefix of PostgreSQL's that holds at least everything answered to the earlier writes, and the end the same.
 *   Nothing is lost by it: the unanswered messages never ran, and PostgreSQL's FATAL rolls back what they did.
 * - A case whose last write does not end at a flush point (Sync, Flush, Query, FunctionCall, CopyDone/CopyFail):
 *   PostgreSQL sends an ErrorResponse at once, the proxy sends a request on at its flush point, so PostgreSQL's
 *   early replies to that write may be missing — the same prefix rule. A client is owed replies only after a flush
 *   point (protocol: "the backend will not flush until Sync or Flush").
 * - Cases with a FunctionCall ('F') are not run on the sharded target: refused there (0A000) unless the session chose
 *   a shard, by design (docs/sharding.md, "FunctionCall messages run on the shard the session routed itself to").
 */
export function isCaseForTarget(c: FuzzCase, kind: TargetKind): boolean {
  return !(kind === 'sharded' && c.features.functionCall);
}

function cstrings(body: Buffer): string[] {
  return body.toString('utf8').split('\0').slice(0, -1);
}

function rowDescription(body: Buffer): string {
  const n = body.readInt16BE(0);
  const cols: string[] = [];
  let p = 2;
  for (let i = 0; i < n; i++) {
    const end = body.indexOf(0, p);
    const name = body.toString('utf8', p, end);
    p = end + 1;
    const type = body.readInt32BE(p + 6);
    const format = body.readInt16BE(p + 16);
    cols.push(`${name}:${type}:${format}`);
    p += 18;
  }
  return `RowDescription(${cols.join(', ')})`;
}

function dataRow(body: Buffer): string {
  const n = body.readInt16BE(0);
  const values: string[] = [];
  let p = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(p);
    p += 4;
    if (len < 0) values.push('NULL');
    else {
      values.push(body.subarray(p, p + len).toString('hex'));
      p += len;
    }
  }
  return `DataRow(${values.join(', ')})`;
}

/** One message as the text compared, or null when it is not compared at all. */
export function normalizeMessage(m: RawMessage): string | null {
  switch (m.type) {
    case 'S':
      return null;
    case 'E':
    case 'N': {
      const e = errorFields(m.body);
      return `${m.type === 'E' ? 'Error' : 'Notice'}(${e.V ?? e.S} ${e.C})`;
    }
    case 'C':
      return `CommandComplete(${cstrings(m.body)[0]})`;
    case 'Z':
      return `ReadyForQuery(${m.body.toString('latin1')})`;
    case 'T':
      return rowDescription(m.body);
    case 'D':
      return dataRow(m.body);
    case 't':
      return `ParameterDescription(${Array.from({ length: m.body.readInt16BE(0) }, (_, i) =>
        m.body.readInt32BE(2 + 4 * i),
      ).join(',')})`;
    case 'G':
    case 'H':
      return `Copy${m.type === 'G' ? 'In' : 'Out'}Response(${m.body.toString('hex')})`;
    case 'd':
      return `CopyData(${JSON.stringify(m.body.toString('utf8'))})`;
    case 'V':
      return `FunctionCallResponse(${m.body.toString('hex')})`;
    default:
      return NAMES[m.type] ?? `Message(${JSON.stringify(m.type)}, ${m.body.toString('hex')})`;
  }
}

const NAMES: Record<string, string> = {
  '1': 'ParseComplete',
  '2': 'BindComplete',
  '3': 'CloseComplete',
  n: 'NoData',
  I: 'EmptyQueryResponse',
  s: 'PortalSuspended',
  c: 'CopyDone',
};

export function normalize(o: Outcome): string[] {
  const out: string[] = [];
  for (const m of o.messages) {
    const n = normalizeMessage(m);
    if (n !== null) out.push(n);
  }
  if (o.isClosed) out.push('<closed>');
  if (o.isHung) out.push('<no reply: hang>');
  return out;
}

function isViolationEnd(tail: string[]): boolean {
  const t = tail.join(' ');
  return t === '<closed>' || t === 'Error(FATAL 08P01) <closed>';
}

/** The replies and their end (a FATAL 08P01 and/or the close), split. */
function splitEnd(replies: string[]): { body: string[]; end: string[] } {
  let cut = replies.length;
  if (replies[cut - 1] === '<closed>') {
    cut--;
    if (replies[cut - 1] === 'Error(FATAL 08P01)') cut--;
  }
  return { body: replies.slice(0, cut), end: replies.slice(cut) };
}

/**
 * Null when `got` answers as `expected` (PostgreSQL's) did, else a readable account of the difference.
 * `mustAnswer`: how many of PostgreSQL's messages the proxy must give even where the rules above let it stop short
 * (those answering writes that ended at a flush point before the last one).
 */
export function difference(
  expected: Outcome,
  got: Outcome,
  mustAnswer: number,
  endsAtFlushPoint: boolean,
): string | null {
  const a = normalize(expected);
  const b = normalize(got);
  if (a.length === b.length && a.every((x, i) => x === b[i])) return null;
  const pa = splitEnd(a);
  const pb = splitEnd(b);
  const isSameEnd = pa.end.join(' ') === pb.end.join(' ');
  const isHeld = !endsAtFlushPoint && pa.end.length === 0 && !got.isHung;
  if (isSameEnd && (isViolationEnd(pa.end) || isHeld)) {
    const isPrefix = pb.body.length <= pa.body.length && pb.body.every((x, i) => x === pa.body[i]);
    const owed = normalize({
      messages: expected.messages.slice(0, mustAnswer),
      isClosed: false,
      isHung: false,
    });
    if (isPrefix && pb.body.length >= owed.length) return null;
  }
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [
    `first difference at reply ${i + 1}`,
    `  PostgreSQL: ${a.join(' ')}`,
    `  proxy:      ${b.join(' ')}`,
  ].join('\n');
}

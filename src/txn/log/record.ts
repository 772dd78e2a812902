// One decision-log record on disk: u32 BE payload length | u32 BE CRC-32 of the payload | payload (UTF-8 JSON).
// Encoding validates what it writes and decoding validates what it reads: disk content is never trusted.
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';

/** One prepared branch of a 2PC transaction: the shard and the GID it was PREPAREd under. */
export interface CommitParticipant {
  readonly shard: number;
  readonly gid: string;
}

/** The commit decision of a 2PC transaction: once durable, recovery must COMMIT PREPARED every participant. */
export interface CommitRecord {
  readonly kind: 'commit';
  /** Opaque to the log (e.g. "sg_<instance>_<n>"). */
  readonly txid: string;
  /** The proxy database name the client used. */
  readonly database: string;
  /** The client user (recovery connects as this user). */
  readonly user: string;
  readonly participants: readonly CommitParticipant[];
  /** Date.now() when decided. */
  readonly at: number;
}

/** Every participant of `txid` has committed: its COMMIT record no longer needs recovery. */
export interface DoneRecord {
  readonly kind: 'done';
  readonly txid: string;
}

export type LogRecord = CommitRecord | DoneRecord;

/** Bytes before each payload: the payload length and its CRC-32, both u32 big-endian. */
export const RECORD_HEADER_BYTES = 8;

/** Largest payload written or read; a longer length on disk is corruption, not a record. */
export const MAX_RECORD_PAYLOAD_BYTES = 1024 * 1024;

/** Why decoding stopped: all bytes used, an incomplete record at the end, or a record that does not check out. */
export type DecodeStop = 'end' | 'torn' | 'corrupt';

export interface DecodeResult {
  /** The records before the stop, in file order. */
  records: LogRecord[];
  /** Offset just past the last good record: where valid data ends. */
  validBytes: number;
  stop: DecodeStop;
  /** What was wrong at `validBytes` ('' at 'end'). */
  reason: string;
}

type ReadStep = { kind: 'ok'; record: LogRecord; end: number } | { kind: 'torn' | 'corrupt'; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function invalid(what: string): never {
  throw new TypeError(`invalid decision log record: ${what}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) invalid(`${what} must be a non-empty string`);
  return value;
}

function toParticipant(value: unknown, index: number): CommitParticipant {
  if (!isObject(value)) invalid(`participants[${index}] must be an object`);
  const shard = value.shard;
  if (typeof shard !== 'number' || !Number.isSafeInteger(shard) || shard < 0) {
    invalid(`participants[${index}].shard must be a non-negative integer`);
  }
  return { shard, gid: nonEmptyString(value.gid, `participants[${index}].gid`) };
}

/**
 * Checks that `value` has the shape of a log record and returns a clean copy (known fields only, fixed key
 * order). Throws a TypeError naming the first bad field.
 */
export function toLogRecord(value: unknown): LogRecord {
  if (!isObject(value)) invalid('not an object');
  const txid = nonEmptyString(value.txid, 'txid');
  if (value.kind === 'done') return { kind: 'done', txid };
  if (value.kind !== 'commit') invalid(`unknown kind ${JSON.stringify(value.kind) ?? 'undefined'}`);
  const database = nonEmptyString(value.database, 'database');
  const user = nonEmptyString(value.user, 'user');
  const participants: unknown = value.participants;
  if (!Array.isArray(participants)) invalid('participants must be an array');
  const at = value.at;
  if (typeof at !== 'number' || !Number.isFinite(at)) invalid('at must be a finite number');
  return {
    kind: 'commit',
    txid,
    database,
    user,
    participants: participants.map((p: unknown, i: number) => toParticipant(p, i)),
    at,
  };
}

/** The on-disk bytes of one record (header + JSON payload). Throws on a malformed or oversized record. */
export function encodeRecord(record: LogRecord): Buffer {
  const json = JSON.stringify(toLogRecord(record));
  const length = Buffer.byteLength(json, 'utf8');
  if (length > MAX_RECORD_PAYLOAD_BYTES) {
    throw new RangeError(`decision log record of ${length} bytes exceeds ${MAX_RECORD_PAYLOAD_BYTES}`);
  }
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + length);
  out.write(json, RECORD_HEADER_BYTES, 'utf8');
  out.writeUInt32BE(length, 0);
  out.writeUInt32BE(crc32(out.subarray(RECORD_HEADER_BYTES)), 4);
  return out;
}

function readRecordAt(buf: Buffer, offset: number): ReadStep {
  const available = buf.length - offset;
  if (available < RECORD_HEADER_BYTES) {
    return { kind: 'torn', reason: `partial header (${available} of ${RECORD_HEADER_BYTES} bytes)` };
  }
  const length = buf.readUInt32BE(offset);
  if (length > MAX_RECORD_PAYLOAD_BYTES) {
    return { kind: 'corrupt', reason: `payload length ${length} exceeds ${MAX_RECORD_PAYLOAD_BYTES}` };
  }
  const start = offset + RECORD_HEADER_BYTES;
  if (buf.length - start < length) {
    return { kind: 'torn', reason: `partial payload (${buf.length - start} of ${length} bytes)` };
  }
  const payload = buf.subarray(start, start + length);
  if (crc32(payload) !== buf.readUInt32BE(offset + 4)) return { kind: 'corrupt', reason: 'CRC mismatch' };
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payload));
  } catch {
    return { kind: 'corrupt', reason: 'payload is not UTF-8 JSON' };
  }
  try {
    return { kind: 'ok', record: toLogRecord(value), end: start + length };
  } catch (err) {
    return { kind: 'corrupt', reason: (err as Error).message };
  }
}

/** Walks `buf` from the start and returns the good records up to the first torn or corrupt one (or the end). */
export function decodeRecords(buf: Buffer): DecodeResult {
  const records: LogRecord[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const step = readRecordAt(buf, offset);
    if (step.kind !== 'ok') return { records, validBytes: offset, stop: step.kind, reason: step.reason };
    records.push(step.record);
    offset = step.end;
  }
  return { records, validBytes: offset, stop: 'end', reason: '' };
}

/**
 * The first offset at or after `from` where a complete, valid record starts, or -1. Tells a torn tail (nothing
 * valid after the break) from damage followed by more data. A payload cannot hide a false match: JSON text never
 * holds a 0x00 byte, and every accepted length starts with one.
 */
export function findNextRecord(buf: Buffer, from: number): number {
  for (let p = from; p + RECORD_HEADER_BYTES < buf.length; p++) {
    const length = buf.readUInt32BE(p);
    const start = p + RECORD_HEADER_BYTES;
    if (length < 2 || length > MAX_RECORD_PAYLOAD_BYTES || start + length > buf.length) continue;
    if (buf[start] !== OPEN_BRACE || buf[start + length - 1] !== CLOSE_BRACE) continue;
    if (readRecordAt(buf, p).kind === 'ok') return p;
  }
  return -1;
}

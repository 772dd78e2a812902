// Bind message parameters as the router needs them: each value's bytes (a view, null = SQL NULL) and its format code
// (the Bind itself is decoded by protocol/bind.ts), and the elements of an array parameter.
import { Buffer } from 'node:buffer';
import { decodeBind } from '../protocol/bind.js';
import type { ParameterFormat } from '../sharding/shard-of.js';

export interface BindParams {
  /** 0-based; null = SQL NULL. Views into the Bind frame. */
  readonly values: readonly (Buffer | null)[];
  readonly formats: readonly ParameterFormat[];
}

/** The parameters of a Bind frame (protocol/bind.ts decodes it; 08P01 / 22023 for a malformed one). */
export function decodeBindParams(frame: Buffer): BindParams {
  return decodeBind(frame);
}

/**
 * The elements of an array parameter (`col = ANY($n)`): text form `{1,2,"a b",NULL}` or PostgreSQL's binary array
 * format (one dimension). Element values come back as text bytes (text form) or binary element bytes.
 */
export function decodeArrayParam(value: Buffer, format: ParameterFormat): (Buffer | null)[] {
  return format === 1 ? decodeBinaryArray(value) : decodeTextArray(value.toString('utf8'));
}

function decodeBinaryArray(b: Buffer): (Buffer | null)[] {
  if (b.length < 12) throw new Error('array parameter too short');
  const ndim = b.readInt32BE(0);
  if (ndim === 0) return [];
  if (ndim !== 1) throw new Error('only one-dimensional array parameters can carry sharding keys');
  let p = 12;
  const count = b.readInt32BE(p);
  p += 8; // dimension size, lower bound
  const out: (Buffer | null)[] = [];
  for (let i = 0; i < count; i++) {
    const len = b.readInt32BE(p);
    p += 4;
    if (len === -1) out.push(null);
    else {
      out.push(b.subarray(p, p + len));
      p += len;
    }
  }
  return out;
}

function decodeTextArray(s: string): (Buffer | null)[] {
  const t = s.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) throw new Error(`malformed array literal: "${s}"`);
  const body = t.slice(1, -1);
  const out: (Buffer | null)[] = [];
  if (body.trim() === '') return out;
  let i = 0;
  while (i <= body.length) {
    while (body[i] === ' ') i++;
    if (body[i] === '"') {
      let v = '';
      i++;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === '\\') i++;
        v += body[i++];
      }
      i++; // closing quote
      out.push(Buffer.from(v));
    } else {
      let end = body.indexOf(',', i);
      if (end < 0) end = body.length;
      const raw = body.slice(i, end).trim();
      if (raw.startsWith('{'))
        throw new Error('only one-dimensional array parameters can carry sharding keys');
      out.push(raw.toUpperCase() === 'NULL' ? null : Buffer.from(raw));
      i = end;
    }
    while (body[i] === ' ') i++;
    if (i >= body.length) break;
    if (body[i] !== ',') throw new Error(`malformed array literal: "${s}"`);
    i++;
  }
  return out;
}

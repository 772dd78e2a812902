// Bind message parameters as the router needs them: each value's bytes (a view, null = SQL NULL) and its format code.
// Only the parameter section is decoded; the portal/statement names and result formats are skipped.
import type { ParameterFormat } from '../sharding/shard-of.js';

export interface BindParams {
  /** 0-based; null = SQL NULL. Views into the Bind frame. */
  readonly values: readonly (Buffer | null)[];
  readonly formats: readonly ParameterFormat[];
}

/** Decode the parameters of a Bind frame (type byte + length included). Throws on a malformed frame. */
export function decodeBindParams(frame: Buffer): BindParams {
  let p = frame.indexOf(0, 5); // portal name
  if (p < 0) throw new Error('Bind: unterminated portal name');
  p = frame.indexOf(0, p + 1); // statement name
  if (p < 0) throw new Error('Bind: unterminated statement name');
  p += 1;
  const need = (n: number): void => {
    if (p + n > frame.length) throw new Error('Bind: message too short');
  };
  need(2);
  const formatCount = frame.readInt16BE(p);
  p += 2;
  need(formatCount * 2);
  const codes: number[] = [];
  for (let i = 0; i < formatCount; i++, p += 2) codes.push(frame.readInt16BE(p));
  need(2);
  const paramCount = frame.readInt16BE(p);
  p += 2;
  if (formatCount > 1 && formatCount !== paramCount)
    throw new Error('Bind: format code count does not match parameters');
  const values: (Buffer | null)[] = [];
  const formats: ParameterFormat[] = [];
  for (let i = 0; i < paramCount; i++) {
    need(4);
    const len = frame.readInt32BE(p);
    p += 4;
    if (len === -1) values.push(null);
    else {
      if (len < 0) throw new Error('Bind: negative parameter length');
      need(len);
      values.push(frame.subarray(p, p + len));
      p += len;
    }
    const code = formatCount === 0 ? 0 : formatCount === 1 ? codes[0] : codes[i];
    if (code !== 0 && code !== 1) throw new Error(`Bind: invalid format code ${code}`);
    formats.push(code);
  }
  return { values, formats };
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

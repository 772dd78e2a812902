// The one codec of the client's Bind message (and the Parse frames the proxy builds): decoded once, checked as
// PostgreSQL's exec_bind_message checks it — a malformed Bind is an ERROR with 08P01 (22023 for a format code other
// than text or binary), as the server would answer, never an internal error — and encoded back for rewritten requests.
import { Frontend } from './codes.js';
import { checkedNameEnd } from './frontend-fields.js';
import { MessageWriter } from './writer.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

/** 0 = text, 1 = binary. */
export type FormatCode = 0 | 1;

export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  /** Per parameter, 0-based; null = SQL NULL. Views into the frame. */
  readonly values: readonly (Buffer | null)[];
  /** Per parameter (the message's 0, 1 or n format codes spread out). */
  readonly formats: readonly FormatCode[];
  /** int16 count + int16[] result format codes, as the client sent them (a view into the frame). */
  readonly resultFormats: Buffer;
}

function malformed(message?: string): PgError {
  return PgError.malformedMessage(message);
}

/** `n` more bytes must follow offset `p` of `frame` (a module function: a closure over `p` cost one per Bind). */
function need(frame: Buffer, p: number, n: number): void {
  if (n < 0 || p + n > frame.length) throw malformed();
}

/**
 * Shared all-text format lists by parameter count: decoded Binds hand them out read-only (BindMessage.formats is
 * readonly). Built by push, not frozen, so they keep the element kind of the lists built per Bind (one shape to read).
 */
const TEXT_FORMATS: FormatCode[][] = [];

function textFormats(count: number): readonly FormatCode[] {
  let formats = count < 256 ? TEXT_FORMATS[count] : undefined;
  if (formats === undefined) {
    formats = [];
    for (let i = 0; i < count; i++) formats.push(0);
    if (count < 256) TEXT_FORMATS[count] = formats;
  }
  return formats;
}

/** Where a Bind's parts are, read and checked up to its first parameter by bindLayout. */
interface BindLayout {
  portalEnd: number;
  statementEnd: number;
  formatCount: number;
  /** Offset of the first format code. */
  codesAt: number;
  paramCount: number;
  /** Offset of the first parameter's length. */
  valuesAt: number;
  /** No format codes, or one 0: every parameter is text. */
  isAllText: boolean;
}

/** bindLayout's answer, reused (read it before the next call): checking a Bind's header allocates nothing. */
const LAYOUT: BindLayout = {
  portalEnd: 0,
  statementEnd: 0,
  formatCount: 0,
  codesAt: 0,
  paramCount: 0,
  valuesAt: 0,
  isAllText: true,
};

/** A Bind's names, format codes and parameter count, checked as exec_bind_message checks them (08P01). */
function bindLayout(frame: Buffer): Readonly<BindLayout> {
  // The names by a loop: short, and cheaper read than Buffer#indexOf's call into C++ (frontend-fields.ts).
  const portalEnd = checkedNameEnd(frame, 5);
  const statementEnd = checkedNameEnd(frame, portalEnd + 1);
  let p = statementEnd + 1;
  need(frame, p, 2);
  const formatCount = frame.readInt16BE(p);
  p += 2;
  need(frame, p, formatCount * 2);
  const codesAt = p; // the format codes are read in place (no array per Bind)
  p += formatCount * 2;
  need(frame, p, 2);
  const paramCount = frame.readInt16BE(p);
  p += 2;
  if (paramCount < 0) throw malformed();
  if (formatCount > 1 && formatCount !== paramCount) {
    throw malformed(`bind message has ${formatCount} parameter formats but ${paramCount} parameters`);
  }
  LAYOUT.portalEnd = portalEnd;
  LAYOUT.statementEnd = statementEnd;
  LAYOUT.formatCount = formatCount;
  LAYOUT.codesAt = codesAt;
  LAYOUT.paramCount = paramCount;
  LAYOUT.valuesAt = p;
  LAYOUT.isAllText = formatCount === 0 || (formatCount === 1 && frame.readInt16BE(codesAt) === 0);
  return LAYOUT;
}

/** Parameter `i`'s format code (not all text), checked: 22023 for one other than text or binary. */
function formatAt(frame: Buffer, layout: Readonly<BindLayout>, i: number): FormatCode {
  const code = frame.readInt16BE(layout.formatCount === 1 ? layout.codesAt : layout.codesAt + 2 * i);
  if (code !== 0 && code !== 1) {
    throw new PgError('ERROR', SqlState.InvalidParameterValue, `unsupported format code: ${code}`);
  }
  return code;
}

/** The result format codes starting at `p`, checked to end the frame exactly. */
function checkResultFormats(frame: Buffer, p: number): void {
  need(frame, p, 2);
  const resultCount = frame.readInt16BE(p);
  need(frame, p + 2, resultCount * 2);
  if (p + 2 + resultCount * 2 !== frame.length) throw malformed(`invalid message format`);
}

/** Decode a Bind frame (type byte and length included). Throws PgError 08P01 / 22023 for a malformed one. */
export function decodeBind(frame: Buffer): BindMessage {
  const layout = bindLayout(frame);
  const { portalEnd, statementEnd, paramCount } = layout;
  let p = layout.valuesAt;
  const values = new Array<Buffer | null>(paramCount); // sized once (pushes would grow it)
  // All text: a shared array per parameter count instead of a new one per Bind.
  const formats: FormatCode[] | null = layout.isAllText ? null : [];
  for (let i = 0; i < paramCount; i++) {
    need(frame, p, 4);
    const len = frame.readInt32BE(p);
    p += 4;
    if (len === -1) values[i] = null;
    else {
      need(frame, p, len);
      values[i] = frame.subarray(p, p + len);
      p += len;
    }
    if (formats !== null) formats.push(formatAt(frame, layout, i));
  }
  checkResultFormats(frame, p);
  return new DecodedBind(
    frame.toString('utf8', 5, portalEnd),
    frame.toString('utf8', portalEnd + 1, statementEnd),
    values,
    formats ?? textFormats(paramCount),
    frame,
    p,
  );
}

/** One parameter of a Bind located in its frame (bindValueAt). */
export interface BindValueAt {
  /** The value is `frame[start, end)`; -1 for SQL NULL. */
  start: number;
  end: number;
  format: FormatCode;
}

/** bindValueAt's answer, reused (read it before the next call): locating a key allocates nothing. */
const VALUE_AT: BindValueAt = { start: 0, end: 0, format: 0 };

/**
 * Parameter `index` (0-based) of a Bind frame, located in place: the frame is checked exactly as decodeBind checks
 * it (the same PgErrors for a malformed one), and nothing is decoded — no names, no value views. For routing by one
 * key parameter (frontend/session-router.ts). Null when the Bind has no parameter `index`. The answer is shared:
 * read it before calling again.
 */
export function bindValueAt(frame: Buffer, index: number): Readonly<BindValueAt> | null {
  const layout = bindLayout(frame);
  let p = layout.valuesAt;
  let found = false;
  for (let i = 0; i < layout.paramCount; i++) {
    need(frame, p, 4);
    const len = frame.readInt32BE(p);
    p += 4;
    const start = p;
    if (len !== -1) {
      need(frame, p, len);
      p += len;
    }
    const code = layout.isAllText ? 0 : formatAt(frame, layout, i);
    if (i === index) {
      found = true;
      VALUE_AT.start = len === -1 ? -1 : start;
      VALUE_AT.end = p;
      VALUE_AT.format = code;
    }
  }
  checkResultFormats(frame, p);
  return found ? VALUE_AT : null;
}

/** A decoded Bind: its result format codes are cut from the frame only when asked for (only rewrites need them). */
class DecodedBind implements BindMessage {
  constructor(
    readonly portal: string,
    readonly statement: string,
    readonly values: readonly (Buffer | null)[],
    readonly formats: readonly FormatCode[],
    private readonly frame: Buffer,
    private readonly resultStart: number,
  ) {}

  get resultFormats(): Buffer {
    return this.frame.subarray(this.resultStart);
  }
}

/** A Bind of the unnamed statement to `bind`'s portal with the parameters `paramMap` (1-based) picks from it. */
export function encodeBind(bind: BindMessage, paramMap: readonly number[]): Buffer {
  const w = new MessageWriter(64).cstring(bind.portal).cstring('');
  w.int16(paramMap.length);
  for (const old of paramMap) w.int16(bind.formats[old - 1] ?? 0);
  w.int16(paramMap.length);
  for (const old of paramMap) {
    const v = bind.values[old - 1];
    if (v === null || v === undefined) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  w.bytes(bind.resultFormats);
  return w.frame(Frontend.Bind);
}

/** A Parse of the unnamed statement `sql`, declaring the types `paramMap` (1-based) picks from `originalTypes`. */
export function encodeParse(
  sql: string,
  originalTypes: readonly number[],
  paramMap: readonly number[],
): Buffer {
  const w = new MessageWriter(sql.length + 16 + paramMap.length * 4).cstring('').cstring(sql);
  w.int16(paramMap.length);
  for (const old of paramMap) w.int32(originalTypes[old - 1] ?? 0);
  return w.frame(Frontend.Parse);
}

/** Parameter type OIDs of a Parse frame (0 = unspecified). */
export function parseParamTypes(frame: Buffer): number[] {
  // As PostgreSQL's exec_parse_message reads it: a malformed Parse is an ERROR 08P01, the session goes on.
  const nameEnd = frame.indexOf(0, 5);
  const queryEnd = nameEnd < 0 ? -1 : frame.indexOf(0, nameEnd + 1);
  if (queryEnd < 0) throw malformed('invalid string in message');
  let p = queryEnd + 1;
  if (p + 2 > frame.length) throw malformed();
  const n = frame.readUInt16BE(p); // pq_getmsgint(2): unsigned
  p += 2;
  if (p + 4 * n > frame.length) throw malformed();
  const out: number[] = [];
  for (let i = 0; i < n; i++, p += 4) out.push(frame.readUInt32BE(p));
  if (p !== frame.length) throw malformed('invalid message format');
  return out;
}

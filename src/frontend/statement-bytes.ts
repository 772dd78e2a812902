// The SQL text of a Query or Parse frame read as bytes, without decoding or parsing it: where the text starts and
// ends, the first byte of a statement past whitespace and (nested) comments, and whether a keyword starts there. For
// the checks the one-shard path makes on every request, which never parses SQL (listen-check.ts: LISTEN in
// transaction mode; settings-truth.ts: statements that may change session state). Written by hand: a few bytes read
// per statement, no allocation.
import type { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const VT = 0x0b;
const FF = 0x0c;
const CR = 0x0d;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;

/** Where the statement text of a Query (after the header) or Parse (after the header and name) starts; -1: none. */
export function textStart(type: number, frame: Buffer): number {
  if (type === Frontend.Query) return 5;
  const nameEnd = frame.indexOf(0, 5);
  return nameEnd < 0 ? -1 : nameEnd + 1;
}

/** Where that text ends (its NUL); -1: none. */
export function textEnd(type: number, frame: Buffer, start: number): number {
  return type === Frontend.Query ? frame.length - 1 : frame.indexOf(0, start);
}

/** Past whitespace, line comments and (nested) block comments from `p`, before `end`. */
export function skipBlank(frame: Buffer, p: number, end = frame.length): number {
  while (p < end) {
    const c = frame[p];
    if (c === SPACE || c === TAB || c === LF || c === CR || c === FF || c === VT) p++;
    else if (c === DASH && frame[p + 1] === DASH) {
      const eol = frame.indexOf(LF, p + 2);
      p = eol < 0 || eol >= end ? end : eol + 1;
    } else if (c === SLASH && frame[p + 1] === STAR) {
      let depth = 1;
      p += 2;
      while (p < end && depth > 0) {
        if (frame[p] === SLASH && frame[p + 1] === STAR) {
          depth++;
          p += 2;
        } else if (frame[p] === STAR && frame[p + 1] === SLASH) {
          depth--;
          p += 2;
        } else p++;
      }
    } else return p;
  }
  return p;
}

/** A byte that continues an SQL identifier (letters, digits, `_`, `$`, any byte of a multi-byte character). */
export function isIdentifierByte(c: number | undefined): boolean {
  if (c === undefined) return false;
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x5f ||
    c === 0x24 ||
    c >= 0x80
  );
}

/** `keyword` (lower case ASCII) starts at `p`, in any case, as a whole word, before `end`. */
export function isKeywordAt(frame: Buffer, p: number, end: number, keyword: string): boolean {
  const n = keyword.length;
  if (p + n > end) return false;
  for (let i = 0; i < n; i++) if ((frame[p + i] | 0x20) !== keyword.charCodeAt(i)) return false;
  return !isIdentifierByte(frame[p + n]);
}

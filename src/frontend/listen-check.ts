// LISTEN in transaction mode: the server goes back to the pool when the transaction ends, so notifications would reach
// whichever client uses that connection next, or nobody. Such a statement is refused (0A000) instead. The statement is
// recognised by the keyword at the start of a Query or Parse (after whitespace and comments), a few bytes read per
// statement, before any routing: the single-shard path never parses SQL. It is replaced by a stand-in
// (errors/listen-refused.ts) that a server rejects — the reply scanner swaps that error for the refusal — and the
// sharded router refuses, so the refusal keeps its place among pipelined requests as query_size_limit's does.
import { Buffer } from 'node:buffer';
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
const KEYWORD = Buffer.from('listen');

/** Where the statement text of a Query (after the header) or Parse (after the header and name) starts; -1: none. */
function textStart(type: number, frame: Buffer): number {
  if (type === Frontend.Query) return 5;
  const nameEnd = frame.indexOf(0, 5);
  return nameEnd < 0 ? -1 : nameEnd + 1;
}

/** Past whitespace, line comments and (nested) block comments from `p`. */
function skipBlank(frame: Buffer, p: number): number {
  const end = frame.length;
  while (p < end) {
    const c = frame[p];
    if (c === SPACE || c === TAB || c === LF || c === CR || c === FF || c === VT) p++;
    else if (c === DASH && frame[p + 1] === DASH) {
      const eol = frame.indexOf(LF, p + 2);
      p = eol < 0 ? end : eol + 1;
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

function isIdentifierByte(c: number | undefined): boolean {
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

/** A Query or Parse whose statement starts with LISTEN. */
export function startsWithListen(type: number, frame: Buffer): boolean {
  const start = textStart(type, frame);
  if (start < 0) return false;
  const p = skipBlank(frame, start);
  if (p + KEYWORD.length >= frame.length) return false;
  for (let i = 0; i < KEYWORD.length; i++) if ((frame[p + i] | 0x20) !== KEYWORD[i]) return false;
  return !isIdentifierByte(frame[p + KEYWORD.length]);
}

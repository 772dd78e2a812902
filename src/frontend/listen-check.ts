// LISTEN in transaction mode: the server goes back to the pool when the transaction ends, so notifications would reach
// whichever client uses that connection next, or nobody. Such a statement is refused (0A000) instead. The statement is
// recognised by the keyword at the start of a Query or Parse (after whitespace and comments), a few bytes read per
// statement, before any routing: the single-shard path never parses SQL. It is replaced by a stand-in
// (errors/listen-refused.ts) that a server rejects — the reply scanner swaps that error for the refusal — and the
// sharded router refuses, so the refusal keeps its place among pipelined requests as query_size_limit's does.
import type { Buffer } from 'node:buffer';
import { isKeywordAt, skipBlank, textStart } from './statement-bytes.js';

const KEYWORD = 'listen';

/** A Query or Parse whose statement starts with LISTEN. */
export function startsWithListen(type: number, frame: Buffer): boolean {
  const start = textStart(type, frame);
  if (start < 0) return false;
  const p = skipBlank(frame, start);
  if (p + KEYWORD.length >= frame.length) return false;
  return isKeywordAt(frame, p, frame.length, KEYWORD);
}

// Literal normalization for simple-protocol queries: `SELECT … WHERE aid = 12345` and `… aid = 678` become one text,
// `SELECT … WHERE aid = $1`, with the literals as text parameters, so the plan cache keeps one plan for both instead of
// a parse (~25 µs) per distinct literal. Deliberately conservative: only plain integers, plain decimals and plain
// '…' strings in value positions are replaced; anything it does not fully understand — comments (they may carry a
// routing hint), $n parameters, dollar quotes, E'…' / U&'…' / B'…' / X'…' strings, typed literals such as
// `interval '1 day'`, exponents, several statements — leaves the query as it is (null), and the caller parses the
// raw text as before. Hand-written: it runs on every simple Query on the hot path, a single pass over the bytes.

/** At most this many literals are replaced (beyond: not normalized — a long VALUES list is better parsed as is). */
const MAX_LITERALS = 64;

function isIdentChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x24 || // $
    c >= 0x80 // non-ASCII identifier characters
  );
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The last character before `i` that is not white space (0 at the start). */
function previousSignificant(sql: string, i: number): number {
  for (let j = i - 1; j >= 0; j--) {
    const c = sql.charCodeAt(j);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c;
  }
  return 0;
}

/**
 * Where normalizedText found each literal of the text it read last: the token's bounds in that text (a string's with
 * its quotes), whether it is a string, and whether the string holds doubled quotes. Shared scratch (the hot path
 * allocates no array per Query): read with literalCount / literalValue before the next call.
 */
const tokenStarts = new Int32Array(MAX_LITERALS);
const tokenEnds = new Int32Array(MAX_LITERALS);
/** 0: a number; 1: a string; 2: a string with '' inside. */
const tokenKinds = new Uint8Array(MAX_LITERALS);
let scannedSql = '';
let scannedCount = 0;

/** `$1` … `$64`, made once. */
const PARAM_NAMES = Array.from({ length: MAX_LITERALS }, (_, i) => `$${i + 1}`);

/** How many literals the last normalizedText call replaced. */
export function literalCount(): number {
  return scannedCount;
}

/** The value of literal `k` (0-based: parameter `$k+1`) of the last normalizedText call (a string's unquoted). */
export function literalValue(k: number): string {
  if (k >= scannedCount) throw new RangeError(`no literal ${k}`);
  const kind = tokenKinds[k];
  if (kind === 0) return scannedSql.slice(tokenStarts[k], tokenEnds[k]);
  const inner = scannedSql.slice(tokenStarts[k] + 1, tokenEnds[k] - 1);
  return kind === 2 ? inner.replaceAll("''", "'") : inner;
}

/**
 * `sql` with its literals replaced by parameters (`$1`, `$2`, …), or null when it has none or holds anything this does
 * not handle (then the raw text is to be parsed). The literals' values are read after it with literalCount /
 * literalValue (until the next call): the hot path makes only the value it needs (session-router.ts, the sharding
 * key's).
 */
export function normalizedText(sql: string): string | null {
  scannedCount = 0;
  const count = scanLiterals(sql);
  if (count <= 0) return null;
  scannedSql = sql;
  scannedCount = count;
  let out = '';
  let from = 0; // start of the part of `sql` not copied to `out` yet
  for (let k = 0; k < count; k++) {
    out += sql.slice(from, tokenStarts[k]) + PARAM_NAMES[k];
    from = tokenEnds[k];
  }
  return out + sql.slice(from);
}

/**
 * The literals of `sql` into the scratch arrays above: how many (0: none), or -1 when it holds anything this does
 * not handle. A single pass over the text; nothing allocated.
 */
function scanLiterals(sql: string): number {
  const n = sql.length;
  let count = 0;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 /* ' */) {
      // A string literal: only where a value stands (after an operator or punctuation), not a typed literal or a
      // prefixed one (E'…', B'…', interval '…' — the character before it would be a letter).
      const before = previousSignificant(sql, i);
      // U&'…' (before: &), adjacent literals ('a' 'b'), quoted names: not handled.
      if (isIdentChar(before) || before === 0x27 || before === 0x22 || before === 0x26) return -1;
      let j = i + 1;
      let kind = 1;
      for (;;) {
        if (j >= n) return -1; // unterminated: let the parser say so
        // A backslash means something else under standard_conforming_strings = off: not handled.
        if (sql.charCodeAt(j) === 0x5c) return -1;
        if (sql.charCodeAt(j) === 0x27) {
          if (j + 1 < n && sql.charCodeAt(j + 1) === 0x27) {
            kind = 2; // '' is a quote
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      if (count === MAX_LITERALS) return -1;
      tokenStarts[count] = i;
      tokenEnds[count] = j + 1;
      tokenKinds[count] = kind;
      count++;
      i = j + 1;
      continue;
    }
    if (isDigit(c)) {
      const before = i > 0 ? sql.charCodeAt(i - 1) : 0;
      if (isIdentChar(before) || before === 0x2e /* . */) {
        // Part of an identifier ($1, t1, x.1): skip the rest of the token.
        if (before === 0x24) return -1; // a $n parameter: the client's own, not ours to renumber
        while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
        continue;
      }
      let j = i;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      if (j < n && sql.charCodeAt(j) === 0x2e && j + 1 < n && isDigit(sql.charCodeAt(j + 1))) {
        j++;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
      }
      // An exponent, a trailing dot, or letters glued on (1e5, 1., 10abc): not handled.
      if (j < n && (isIdentChar(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x2e)) return -1;
      if (count === MAX_LITERALS) return -1;
      tokenStarts[count] = i;
      tokenEnds[count] = j;
      tokenKinds[count] = 0;
      count++;
      i = j;
      continue;
    }
    if (c === 0x22 /* " */) {
      const end = sql.indexOf('"', i + 1);
      if (end < 0) return -1;
      i = end + 1; // a quoted identifier ("" inside is two quoted parts in a row: fine)
      continue;
    }
    if (c === 0x2d /* - */ && i + 1 < n && sql.charCodeAt(i + 1) === 0x2d) return -1; // -- comment
    if (c === 0x2f /* / */ && i + 1 < n && sql.charCodeAt(i + 1) === 0x2a) return -1; // /* comment */
    if (c === 0x24 /* $ */ && !isIdentChar(i > 0 ? sql.charCodeAt(i - 1) : 0)) return -1; // $n or $$ quote
    if (c === 0x3b /* ; */) {
      // Only a trailing semicolon: several statements are routed one by one from their own parse.
      for (let j = i + 1; j < n; j++) {
        const d = sql.charCodeAt(j);
        if (d !== 0x20 && d !== 0x0a && d !== 0x0d && d !== 0x09 && d !== 0x3b) return -1;
      }
    }
    if (isIdentChar(c)) {
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      continue;
    }
    i++;
  }
  return count;
}

// Manual routing hints written as C-style comments in the SQL text: shardgate's `/* shardgate: shard=N */` and
// `/* shardgate: sharding_key=V */`, and PgDog's `/* pgdog_shard: N */` and `/* pgdog_sharding_key: V */` (same
// patterns as PgDog's router: anywhere in the statement, block comments only). String literals, quoted identifiers
// and dollar-quoted bodies are skipped, so a hint inside a value is not a hint.

export interface CommentHints {
  /** Shard number the client asked for, or null. */
  shard: number | null;
  /** Sharding key value the client supplied (the router hashes it), or null. */
  shardingKey: string | null;
}

export const NO_HINTS: CommentHints = Object.freeze({ shard: null, shardingKey: null });

const PGDOG_SHARD = /pgdog_shard: *([0-9]+)/;
const PGDOG_KEY = /pgdog_sharding_key: *(?:"([^"]*)"|'([^']*)'|([0-9a-zA-Z-]+))/;
const OUR_SHARD = /shardgate: *shard *= *([0-9]+)/;
const OUR_KEY = /shardgate: *sharding_key *= *(?:"([^"]*)"|'([^']*)'|([0-9a-zA-Z-]+))/;

/** Hints in the block comments of `sql[from, to)`. Cheap when the text mentions no hint at all. */
export function commentHints(sql: string, from = 0, to = sql.length): CommentHints {
  const pg = sql.indexOf('pgdog_', from);
  const ours = sql.indexOf('shardgate:', from);
  if ((pg < 0 || pg >= to) && (ours < 0 || ours >= to)) return NO_HINTS;
  let shard: number | null = null;
  let shardingKey: string | null = null;
  for (const comment of blockComments(sql, from, to)) {
    const s = OUR_SHARD.exec(comment) ?? PGDOG_SHARD.exec(comment);
    if (s !== null && shard === null) shard = Number(s[1]);
    const k = OUR_KEY.exec(comment) ?? PGDOG_KEY.exec(comment);
    if (k !== null && shardingKey === null) shardingKey = k[1] ?? k[2] ?? k[3] ?? null;
  }
  if (shard === null && shardingKey === null) return NO_HINTS;
  return { shard, shardingKey };
}

/** The bodies of the (possibly nested) block comments in `sql[from, to)`, outside literals and quoted names. */
export function blockComments(sql: string, from: number, to: number): string[] {
  const out: string[] = [];
  let i = from;
  while (i < to) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 /* ' */) {
      i = skipQuoted(sql, i, to, 0x27, isEscapeString(sql, i));
    } else if (c === 0x22 /* " */) {
      i = skipQuoted(sql, i, to, 0x22, false);
    } else if (c === 0x2d /* - */ && sql.charCodeAt(i + 1) === 0x2d) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 || nl >= to ? to : nl + 1;
    } else if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a /* * */) {
      const end = skipBlockComment(sql, i, to);
      out.push(sql.slice(i + 2, Math.max(i + 2, end - 2)));
      i = end;
    } else if (c === 0x24 /* $ */ && !isIdentChar(sql.charCodeAt(i - 1))) {
      i = skipDollarQuoted(sql, i, to);
    } else {
      i++;
    }
  }
  return out;
}

function isIdentChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x5f ||
    c >= 0x80
  );
}

/** `E'...'` strings take backslash escapes; a plain `'...'` does not (standard_conforming_strings = on). */
function isEscapeString(sql: string, quoteAt: number): boolean {
  const p = sql.charCodeAt(quoteAt - 1);
  return (p === 0x45 || p === 0x65) && !isIdentChar(sql.charCodeAt(quoteAt - 2));
}

function skipQuoted(sql: string, start: number, to: number, quote: number, backslash: boolean): number {
  let i = start + 1;
  while (i < to) {
    const c = sql.charCodeAt(i);
    if (backslash && c === 0x5c) {
      i += 2;
    } else if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return to;
}

function skipBlockComment(sql: string, start: number, to: number): number {
  let depth = 0;
  let i = start;
  while (i < to) {
    if (sql.charCodeAt(i) === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      depth++;
      i += 2;
    } else if (sql.charCodeAt(i) === 0x2a && sql.charCodeAt(i + 1) === 0x2f) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return to;
}

function skipDollarQuoted(sql: string, start: number, to: number): number {
  // $tag$ … $tag$ where tag is empty or an identifier not starting with a digit ($1 is a parameter).
  let j = start + 1;
  const first = sql.charCodeAt(j);
  if (first >= 0x30 && first <= 0x39) return start + 1;
  while (j < to && sql.charCodeAt(j) !== 0x24) {
    if (!isIdentChar(sql.charCodeAt(j))) return start + 1;
    j++;
  }
  if (j >= to) return start + 1;
  const tag = sql.slice(start, j + 1);
  const end = sql.indexOf(tag, j + 1);
  return end < 0 || end >= to ? to : end + tag.length;
}

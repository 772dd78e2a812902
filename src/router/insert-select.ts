// The text parts of an INSERT … SELECT whose rows the proxy evaluates itself (engine/insert-source.ts): the query to
// run (with the INSERT's WITH clause, which it may read), and the INSERT around it, into which the rows are written as
// a VALUES list. Found with PostgreSQL's own scanner and parser (byte offsets), never by pattern-matching the text.
import { Buffer } from 'node:buffer';
import { scanSync, type ScanToken } from 'libpg-query';
import { parseSync } from 'pgsql-parser';
import { asNode, isObject, list, obj } from './ast.js';
import { escapeStringLiteral } from './sql-text.js';

export interface InsertSelectParts {
  /** What precedes the statement's first keyword (comments, hints), kept in the rewritten INSERT. */
  readonly lead: string;
  /** The query whose rows are inserted, with the INSERT's WITH clause in front when it has one. */
  readonly source: string;
  /** `INSERT INTO t [AS a] [(columns)] [OVERRIDING … VALUE]`, followed by a space. */
  readonly head: string;
  /** ` ON CONFLICT …` / ` RETURNING …` after the query ('' when none). */
  readonly tail: string;
  /** The $n parameters the query uses (1-based). */
  readonly sourceParams: ReadonlySet<number>;
  /** The $n parameters the rest of the INSERT (tail) uses. */
  readonly tailParams: ReadonlySet<number>;
}

const OPEN = 'ASCII_40';
const CLOSE = 'ASCII_41';

/**
 * Split `text`, one INSERT … SELECT statement, into its parts. Null when it is not one the proxy can evaluate: not an
 * INSERT with a query, or a WITH clause that writes (its writes would run once, in the proxy's query).
 */
export function splitInsertSelect(text: string): InsertSelectParts | null {
  const stmts = list(parseSync(text) as unknown as Record<string, unknown>, 'stmts');
  if (stmts.length !== 1) return null;
  const raw = stmts[0];
  const insert = isObject(raw) ? asNode(raw.stmt, 'InsertStmt') : null;
  if (insert === null || asNode(insert.selectStmt, 'SelectStmt') === null) return null;
  const withClause = obj(insert, 'withClause');
  const ctes = withClause !== null ? list(withClause, 'ctes') : [];
  for (const cte of ctes) {
    const query = obj(asNode(cte, 'CommonTableExpr'), 'ctequery');
    if (query === null || asNode(query, 'SelectStmt') === null) return null;
  }
  const bytes = Buffer.from(text, 'utf8');
  const tokens = scanSync(text).tokens.filter(
    (t) => t.tokenName !== 'C_COMMENT' && t.tokenName !== 'SQL_COMMENT',
  );
  const at = (i: number): string => word(tokens[i]);
  // The INSERT keyword: the first token at depth 0 after the WITH clause's parenthesized queries.
  let depth = 0;
  let insertAt = -1;
  for (let i = 0; i < tokens.length && insertAt < 0; i++) {
    const name = tokens[i].tokenName;
    if (name === OPEN) depth++;
    else if (name === CLOSE) depth--;
    else if (depth === 0 && at(i) === 'insert') insertAt = i;
  }
  if (insertAt < 0 || at(insertAt + 1) !== 'into') return null;
  // The target's name: identifiers and keywords joined by dots.
  let i = insertAt + 2;
  for (;;) {
    i++;
    if (tokens[i]?.text !== '.') break;
    i++;
  }
  if (at(i) === 'as') i += 2;
  if (list(insert, 'cols').length > 0) {
    if (tokens[i]?.tokenName !== OPEN) return null;
    i = matchingClose(tokens, i) + 1;
  }
  if (at(i) === 'overriding') i += 3;
  const sourceStart = tokens[i]?.start;
  if (sourceStart === undefined) return null;
  // The query ends where ON CONFLICT or RETURNING begins (RETURNING is reserved: at depth 0 it is the clause).
  let sourceEnd = bytes.length;
  const conflict = obj(insert, 'onConflictClause');
  const conflictAt = conflict !== null && typeof conflict.location === 'number' ? conflict.location : -1;
  if (conflictAt >= 0) sourceEnd = conflictAt;
  depth = 0;
  for (let k = i; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.start >= sourceEnd) break;
    if (t.tokenName === OPEN) depth++;
    else if (t.tokenName === CLOSE) depth--;
    else if (depth === 0 && word(t) === 'returning') {
      sourceEnd = t.start;
      break;
    }
  }
  const slice = (from: number, to: number): string => bytes.toString('utf8', from, to);
  const firstStart = tokens[0].start;
  const withText = insertAt > 0 ? slice(firstStart, tokens[insertAt].start) : '';
  const source = slice(sourceStart, sourceEnd).trimEnd();
  return {
    lead: slice(0, firstStart),
    source: withText + source,
    head: `${slice(tokens[insertAt].start, sourceStart).trimEnd()} `,
    tail: slice(sourceEnd, bytes.length).trim() === '' ? '' : ` ${slice(sourceEnd, bytes.length).trim()}`,
    sourceParams: paramsBetween(
      tokens,
      0,
      sourceEnd,
      (t) => t.start < tokens[insertAt].start || t.start >= sourceStart,
    ),
    tailParams: paramsBetween(tokens, sourceEnd, bytes.length, () => true),
  };
}

/** A token's text as a keyword would compare (lower case). */
function word(t: ScanToken | undefined): string {
  return t === undefined ? '' : t.text.toLowerCase();
}

/** Index of the `)` closing the `(` at `open`. */
function matchingClose(tokens: readonly ScanToken[], open: number): number {
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (tokens[i].tokenName === OPEN) depth++;
    else if (tokens[i].tokenName === CLOSE && --depth === 0) return i;
  }
  return tokens.length;
}

function paramsBetween(
  tokens: readonly ScanToken[],
  from: number,
  to: number,
  keep: (t: ScanToken) => boolean,
): Set<number> {
  const out = new Set<number>();
  for (const t of tokens) {
    if (t.tokenName === 'PARAM' && t.start >= from && t.start < to && keep(t))
      out.add(Number(t.text.slice(1)));
  }
  return out;
}

/** Built-in types whose values are written as typed literals (so INSERT applies its assignment casts, as it would). */
const TYPE_NAMES = new Map<number, string>([
  [16, 'bool'],
  [17, 'bytea'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [26, 'oid'],
  [114, 'json'],
  [700, 'float4'],
  [701, 'float8'],
  [790, 'money'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1266, 'timetz'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
  [869, 'inet'],
  [650, 'cidr'],
  [829, 'macaddr'],
  [1560, 'bit'],
  [1562, 'varbit'],
]);

/**
 * One value of a row the query returned (text format), as a literal of the rewritten INSERT. Values of the built-in
 * types above carry their type, so the INSERT converts them as it converts a query's column (1.5 into an integer
 * column rounds); text-like and user-defined types are written untyped, read by the target column's input function.
 */
export function valueLiteral(value: string | null, typeOid: number): string {
  if (value === null) return 'NULL';
  const quoted = escapeStringLiteral(value); // E'…': the same whatever standard_conforming_strings says
  const type = TYPE_NAMES.get(typeOid);
  return type === undefined ? quoted : `${quoted}::pg_catalog.${type}`;
}

/**
 * The INSERT with `rows` (rendered VALUES rows, e.g. `('1'::pg_catalog.int4,'a')`) in place of its query. With no
 * rows, a query of `columns` NULLs that returns nothing, sent to shard 0 (a hint: nothing to route by), so the
 * statement still reports `INSERT 0 0` — and describes its RETURNING — as PostgreSQL would.
 */
export function insertWithRows(parts: InsertSelectParts, rows: readonly string[], columns: number): string {
  if (rows.length === 0) {
    const nulls = Array.from({ length: Math.max(columns, 1) }, () => 'NULL').join(', ');
    return `${parts.lead}/* shardgate: shard=0 */ ${parts.head}SELECT ${nulls} WHERE false${parts.tail}`;
  }
  return `${parts.lead}${parts.head}VALUES ${rows.join(', ')}${parts.tail}`;
}

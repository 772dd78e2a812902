// Where a SQL text calls PgDog's `pgdog.unique_id()` — and where it says `SHOW pgdog.unique_id` — so the proxy can put
// an id of its own there before the statement is routed (frontend/unique-id-request.ts). Found with PostgreSQL's
// parser: calls without arguments in the expressions of SELECT, INSERT, UPDATE, DELETE, MERGE, and of EXPLAIN, DECLARE
// CURSOR and COPY (query) around them. Not in DDL (a view or default would keep one id forever), not as a FROM-clause
// function (no value stands there), and not with arguments, FILTER or OVER: those reach PostgreSQL as written, which
// answers them (3F000, no schema pgdog). The text is changed by position only, so comments (routing hints) and the
// rest of the statement stay exactly as written. Pure.
import { parseSync } from 'pgsql-parser';
import { scanSync } from 'libpg-query';
import { asNode, isObject, list, str, stringList, walk, type AstObject } from './ast.js';
import { SqlSource } from './parser.js';

/** One place to put an id: a call, or a whole `SHOW pgdog.unique_id` statement; string indices [start, end). */
export interface UniqueIdSite {
  readonly start: number;
  readonly end: number;
  readonly isShow: boolean;
  /**
   * A call inside SQL-level `PREPARE name AS …`: it becomes the statement's parameter `$base + k` (k: its place among
   * that PREPARE's calls, from 1), which each EXECUTE of `name` is given a new id for.
   */
  readonly prepare?: { readonly name: string; readonly base: number; readonly index: number };
}

export interface UniqueIdCalls {
  /** In text order. */
  readonly sites: readonly UniqueIdSite[];
  /** The highest `$n` of the text (0: none): parameters put in for the calls come after it. */
  readonly maxParam: number;
  /** A PREPARE holds a call (each EXECUTE needs ids of its own: see UniqueIdSite.prepare). */
  readonly isInPrepare: boolean;
  /**
   * A call stands in the select list of a query with FROM (INSERT … SELECT … FROM included): PostgreSQL would call a
   * function there once per row, the one id the proxy puts there would be every row's.
   */
  readonly isPerRow: boolean;
}

/** Statements whose expressions may call it, and the fields holding statements inside utility ones. */
const VALUE_STATEMENTS: ReadonlySet<string> = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'ExplainStmt',
  'DeclareCursorStmt',
  'CopyStmt',
  'PrepareStmt',
]);

/** Cheap test before any parse: the text names `pgdog.unique_id` (quotes, case and spaces around the dot allowed). */
const MENTION = /pgdog"?\s*\.\s*"?unique_id/i;

export function mentionsUniqueId(sql: string): boolean {
  return MENTION.test(sql);
}

/** ASCII bytes of `unique` and `id`; a byte OR 0x20 is its lower case (letters only: the bytes compared are letters). */
const U = 0x75;
const N = 0x6e;
const I = 0x69;
const Q = 0x71;
const E = 0x65;
const D = 0x64;
const UNDERSCORE = 0x5f;

/**
 * Whether bytes [from, to) of a message hold `unique_id` in any case: the test before a text is decoded, so the
 * requests that cannot call it (nearly all) cost one pass over their bytes. A loop, not `Buffer#indexOf` per case of
 * `_id` (four calls into C++ per message: about 6× the time of this loop for pgbench's statement).
 */
export function mayMentionUniqueId(frame: Buffer, from: number, to: number): boolean {
  for (let i = from + 6; i + 3 <= to; i++) {
    if (frame[i] !== UNDERSCORE) continue;
    if (
      (frame[i + 1] | 0x20) === I &&
      (frame[i + 2] | 0x20) === D &&
      (frame[i - 6] | 0x20) === U &&
      (frame[i - 5] | 0x20) === N &&
      (frame[i - 4] | 0x20) === I &&
      (frame[i - 3] | 0x20) === Q &&
      (frame[i - 2] | 0x20) === U &&
      (frame[i - 1] | 0x20) === E
    )
      return true;
  }
  return false;
}

/** The calls and SHOWs of `sql`; null when there are none, or when the text does not parse (routing says why). */
export function findUniqueIdCalls(sql: string): UniqueIdCalls | null {
  if (!mentionsUniqueId(sql)) return null;
  let parsed: unknown;
  try {
    parsed = parseSync(sql);
  } catch {
    return null;
  }
  const stmts = isObject(parsed) && Array.isArray(parsed.stmts) ? parsed.stmts : [];
  const source = new SqlSource(sql);
  const sites: UniqueIdSite[] = [];
  let maxParam = 0;
  let isInPrepare = false;
  let isPerRow = false;
  /** `perRow`: inside the select list of a query with FROM, where every row would share the one value. */
  const visitor =
    (perRow: boolean) =>
    (nodeType: string, fields: AstObject): boolean | undefined => {
      if (nodeType === 'ParamRef') {
        maxParam = Math.max(maxParam, typeof fields.number === 'number' ? fields.number : 0);
      } else if (nodeType === 'FuncCall') {
        const site = callSite(sql, source, fields);
        if (site !== null) {
          sites.push(site);
          if (perRow) isPerRow = true;
        }
      } else if (nodeType === 'RangeFunction') {
        // FROM pgdog.unique_id(): a table function, where no value can stand; its arguments are expressions.
        for (const item of list(fields, 'functions')) {
          for (const part of list(asNode(item, 'List'), 'items')) {
            const call = asNode(part, 'FuncCall');
            walk(call ?? part, visitor(perRow)); // a call's fields only: the call itself is not visited
          }
        }
        return false;
      } else if (nodeType === 'SelectStmt') {
        const hasFrom = list(fields, 'fromClause').length > 0;
        for (const key in fields) walk(fields[key], visitor(key === 'targetList' && hasFrom));
        return false;
      }
      return undefined;
    };
  const visit = visitor(false);
  for (const raw of stmts) {
    if (!isObject(raw)) continue;
    const show = asNode(raw.stmt, 'VariableShowStmt');
    if (show !== null) {
      if (str(show, 'name') === 'pgdog.unique_id') sites.push(showSite(sql, source, raw));
      continue;
    }
    const type = isObject(raw.stmt) ? Object.keys(raw.stmt)[0] : undefined;
    if (type === undefined || !VALUE_STATEMENTS.has(type)) continue;
    const before = sites.length;
    const outerMaxParam = maxParam;
    maxParam = 0;
    walk(raw.stmt, visit);
    if (type === 'PrepareStmt' && sites.length > before) {
      isInPrepare = true;
      // Its calls become parameters after its own: past the highest $n it uses and the types it declares.
      const prepare = (raw.stmt as AstObject).PrepareStmt as AstObject;
      const name = str(prepare, 'name') ?? '';
      const base = Math.max(maxParam, list(prepare, 'argtypes').length);
      const own = sites.splice(before).sort((a, b) => a.start - b.start);
      own.forEach((site, k) => sites.push({ ...site, prepare: { name, base, index: k + 1 } }));
    }
    maxParam = Math.max(maxParam, outerMaxParam);
  }
  if (sites.length === 0) return null;
  sites.sort((a, b) => a.start - b.start);
  return { sites, maxParam, isInPrepare, isPerRow };
}

/** What a text does with SQL-level prepared statements, in text order (string indices). */
export type PreparedUse =
  | { readonly kind: 'prepare'; readonly name: string }
  /** `at`: where ids go — before the closing parenthesis of its arguments, or right after the name (none). */
  | { readonly kind: 'execute'; readonly name: string; readonly at: number; readonly hasArgs: boolean }
  /** null: DEALLOCATE ALL / DISCARD ALL. */
  | { readonly kind: 'deallocate'; readonly name: string | null };

/** The PREPARE, EXECUTE and DEALLOCATE statements of `sql`; null when it does not parse (routing says why). */
export function findPreparedUses(sql: string): PreparedUse[] | null {
  let parsed: unknown;
  try {
    parsed = parseSync(sql);
  } catch {
    return null;
  }
  const stmts = isObject(parsed) && Array.isArray(parsed.stmts) ? parsed.stmts : [];
  const source = new SqlSource(sql);
  const out: PreparedUse[] = [];
  for (const raw of stmts) {
    if (!isObject(raw) || !isObject(raw.stmt)) continue;
    const prepare = asNode(raw.stmt, 'PrepareStmt');
    if (prepare !== null) out.push({ kind: 'prepare', name: str(prepare, 'name') ?? '' });
    const deallocate = asNode(raw.stmt, 'DeallocateStmt');
    if (deallocate !== null) {
      out.push({
        kind: 'deallocate',
        name: deallocate.isall === true ? null : (str(deallocate, 'name') ?? ''),
      });
    }
    const discard = asNode(raw.stmt, 'DiscardStmt');
    if (discard !== null && str(discard, 'target') === 'DISCARD_ALL')
      out.push({ kind: 'deallocate', name: null });
    const execute = asNode(raw.stmt, 'ExecuteStmt');
    if (execute === null) continue;
    const locByte = typeof raw.stmt_location === 'number' ? raw.stmt_location : 0;
    const lenByte = typeof raw.stmt_len === 'number' ? raw.stmt_len : 0;
    const endByte = lenByte > 0 ? locByte + lenByte : source.byteLength;
    const text = sql.slice(source.charIndex(locByte), source.charIndex(endByte));
    // Its last token: the closing parenthesis of its arguments, or its name (scanned: comments may follow).
    const tokens = scanSync(text).tokens.filter(
      (t) => t.tokenName !== 'C_COMMENT' && t.tokenName !== 'SQL_COMMENT',
    );
    const last = tokens.filter((t) => t.tokenName !== 'ASCII_59').pop(); // not a trailing ';'
    if (last === undefined) continue;
    const hasArgs = list(execute, 'params').length > 0;
    const atByte = locByte + (hasArgs ? last.start : last.end);
    out.push({ kind: 'execute', name: str(execute, 'name') ?? '', at: source.charIndex(atByte), hasArgs });
  }
  return out;
}

/** The highest `$n` of `sql` (0: none, or it does not parse). */
export function highestParam(sql: string): number {
  let parsed: unknown;
  try {
    parsed = parseSync(sql);
  } catch {
    return 0;
  }
  let max = 0;
  walk(parsed, (nodeType, fields) => {
    if (nodeType === 'ParamRef' && typeof fields.number === 'number') max = Math.max(max, fields.number);
    return undefined;
  });
  return max;
}

/** A call of pgdog.unique_id() with nothing but its name and `()`; null for anything else. */
function callSite(sql: string, source: SqlSource, call: AstObject): UniqueIdSite | null {
  const name = stringList(list(call, 'funcname'));
  if (name.length !== 2 || name[0] !== 'pgdog' || name[1] !== 'unique_id') return null;
  for (const decoration of [
    'args',
    'agg_order',
    'agg_filter',
    'over',
    'agg_within_group',
    'agg_star',
    'agg_distinct',
    'func_variadic',
  ])
    if (call[decoration] !== undefined) return null;
  const location = typeof call.location === 'number' ? call.location : -1;
  if (location < 0) return null;
  const start = source.charIndex(location);
  const end = callEnd(sql, start);
  return end < 0 ? null : { start, end, isShow: false };
}

/** The statement of a `SHOW pgdog.unique_id`, from its SHOW keyword to its end (no `;`, no trailing space). */
function showSite(sql: string, source: SqlSource, raw: AstObject): UniqueIdSite {
  const locByte = typeof raw.stmt_location === 'number' ? raw.stmt_location : 0;
  const lenByte = typeof raw.stmt_len === 'number' ? raw.stmt_len : 0;
  const start = skipSpaceAndComments(sql, source.charIndex(locByte));
  let end = lenByte > 0 ? source.charIndex(locByte + lenByte) : sql.length;
  while (end > start && /[\s;]/.test(sql[end - 1])) end--;
  return { start, end, isShow: true };
}

/** Past `name . name ( )` from `start` (spaces and comments allowed between), or -1 when the text is not that. */
function callEnd(sql: string, start: number): number {
  let i = identifierEnd(sql, start);
  if (i < 0) return -1;
  i = skipSpaceAndComments(sql, i);
  if (sql[i] !== '.') return -1;
  i = identifierEnd(sql, skipSpaceAndComments(sql, i + 1));
  if (i < 0) return -1;
  i = skipSpaceAndComments(sql, i);
  if (sql[i] !== '(') return -1;
  i = skipSpaceAndComments(sql, i + 1);
  return sql[i] === ')' ? i + 1 : -1;
}

/** The end of a quoted or plain identifier at `i`, or -1. */
function identifierEnd(sql: string, i: number): number {
  if (sql[i] === '"') {
    for (let j = i + 1; j < sql.length; j++) {
      if (sql[j] !== '"') continue;
      if (sql[j + 1] === '"') j++;
      else return j + 1;
    }
    return -1;
  }
  const m = /[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/y;
  m.lastIndex = i;
  const found = m.exec(sql);
  return found === null ? -1 : i + found[0].length;
}

function skipSpaceAndComments(sql: string, i: number): number {
  for (;;) {
    while (i < sql.length && /\s/.test(sql[i])) i++;
    if (sql.startsWith('--', i)) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (sql.startsWith('/*', i)) {
      let depth = 0;
      while (i < sql.length) {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          i += 2;
          if (--depth === 0) break;
        } else i++;
      }
    } else return i;
  }
}

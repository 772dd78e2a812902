// SQL text → statements, with PostgreSQL's own parser (libpg_query 18 as WASM, via pgsql-parser). `initParser()`
// loads the module once at startup; parsing is synchronous afterwards. Each statement keeps its own source text, so
// a multi-statement simple query can be routed statement by statement and utility statements forwarded exactly as
// written (never deparsed: the deparser drops clauses such as `AND CHAIN`).
import { Buffer } from 'node:buffer';
import { loadModule, parseSync } from 'pgsql-parser';
import { refusalOf } from '../errors/query-too-large.js';
import { PgError } from '../errors/pg-error.js';
import { isObject, nodeType } from './ast.js';
import { commentHints, type CommentHints } from './comment-hints.js';

export interface ParsedStatement {
  /** The statement's AST node, e.g. `{ SelectStmt: {...} }` (narrow with the guards in ast.ts). */
  readonly node: unknown;
  /** The node's type name, e.g. `'SelectStmt'`, `'TransactionStmt'`. */
  readonly nodeType: string;
  /** The statement as the client wrote it: leading comments kept, no trailing `;`. */
  readonly text: string;
  /** The whole query text the statement came from (AST locations point into it). */
  readonly source: SqlSource;
  /** Manual routing hints from the block comments before and inside this statement. */
  readonly hints: CommentHints;
}

/** The query text with byte-offset (libpg_query locations are UTF-8 byte offsets) to string-index conversion. */
export class SqlSource {
  readonly sql: string;
  readonly isAscii: boolean;
  private bytes: Buffer | null = null;

  constructor(sql: string) {
    this.sql = sql;
    this.isAscii = Buffer.byteLength(sql, 'utf8') === sql.length;
  }

  get byteLength(): number {
    return this.isAscii ? this.sql.length : this.utf8().length;
  }

  /** String index of a UTF-8 byte offset. */
  charIndex(byteOffset: number): number {
    if (this.isAscii) return byteOffset;
    return this.utf8().toString('utf8', 0, byteOffset).length;
  }

  /**
   * The qualified name of `parts` identifiers starting at a byte offset, exactly as written (quotes kept), e.g.
   * `public."Users"`; null when the text there is not such a name.
   */
  nameAt(byteOffset: number, parts: number): string | null {
    const sql = this.sql;
    const start = this.charIndex(byteOffset);
    let i = start;
    for (let p = 0; p < parts; p++) {
      if (p > 0) {
        i = skipSpace(sql, i);
        if (sql.charCodeAt(i) !== 0x2e /* . */) return null;
        i = skipSpace(sql, i + 1);
      }
      if (sql.charCodeAt(i) === 0x22 /* " */) {
        for (i++; ;) {
          const q = sql.indexOf('"', i);
          if (q < 0) return null;
          i = q + 1;
          if (sql.charCodeAt(i) !== 0x22) break;
          i++;
        }
      } else {
        IDENT.lastIndex = i;
        const m = IDENT.exec(sql);
        if (m === null) return null;
        i += m[0].length;
      }
    }
    return sql.slice(start, i);
  }

  private utf8(): Buffer {
    if (this.bytes === null) this.bytes = Buffer.from(this.sql, 'utf8');
    return this.bytes;
  }
}

/** An unquoted SQL identifier (sticky: matches only at lastIndex). */
const IDENT = /[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/y;

function skipSpace(sql: string, i: number): number {
  while (i < sql.length && /\s/.test(sql[i])) i++;
  return i;
}

let loaded: Promise<void> | null = null;
let ready = false;

/** Loads the parser (WASM) once; await it before the first `parseStatements`. */
export function initParser(): Promise<void> {
  if (loaded === null) {
    loaded = loadModule().then(() => {
      ready = true;
    });
  }
  return loaded;
}

/**
 * Parses a query text into its statements (empty for an empty or comment-only text). A syntax error becomes a
 * PgError 42601 with PostgreSQL's message and 1-based position, as the server itself would report it.
 */
export function parseStatements(sql: string): ParsedStatement[] {
  if (!ready) throw PgError.internal('SQL parser used before initParser() finished');
  // A Query / Parse refused for query_size_limit: its stand-in is answered with that refusal.
  const refusal = refusalOf(sql);
  if (refusal !== null) throw refusal;
  // The WASM parser refuses an empty string; PostgreSQL answers it with EmptyQueryResponse.
  if (/^\s*$/.test(sql)) return [];
  let result: unknown;
  try {
    result = parseSync(sql);
  } catch (err) {
    throw toSyntaxError(err);
  }
  const stmts = isObject(result) && Array.isArray(result.stmts) ? result.stmts : [];
  const source = new SqlSource(sql);
  const out: ParsedStatement[] = [];
  let regionStartByte = 0;
  for (const raw of stmts) {
    if (!isObject(raw)) continue;
    const node = raw.stmt;
    const type = nodeType(node);
    const locByte = typeof raw.stmt_location === 'number' ? raw.stmt_location : 0;
    const lenByte = typeof raw.stmt_len === 'number' ? raw.stmt_len : 0;
    // stmt_len 0 means "to the end of the text" (the last statement without a trailing ';').
    const endByte = lenByte > 0 ? locByte + lenByte : source.byteLength;
    const from = source.charIndex(Math.min(regionStartByte, locByte));
    const to = source.charIndex(endByte);
    if (type !== null) {
      out.push({
        node,
        nodeType: type,
        text: statementText(sql, from, to),
        source,
        hints: commentHints(sql, from, to),
      });
    }
    regionStartByte = endByte + 1; // past the ';'
  }
  return out;
}

/** The statement text: leading whitespace and stray semicolons dropped, trailing whitespace dropped. */
function statementText(sql: string, from: number, to: number): string {
  let a = from;
  while (a < to) {
    const c = sql.charCodeAt(a);
    if (c === 0x3b || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c) a++;
    else break;
  }
  let b = to;
  while (b > a) {
    const c = sql.charCodeAt(b - 1);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c) b--;
    else break;
  }
  return a === 0 && b === sql.length ? sql : sql.slice(a, b);
}

function toSyntaxError(err: unknown): PgError {
  if (isObject(err)) {
    const details = err.sqlDetails;
    if (isObject(details) && typeof details.message === 'string') {
      const cursor = typeof details.cursorPosition === 'number' ? details.cursorPosition : -1;
      return PgError.syntaxError(details.message, cursor >= 0 ? cursor + 1 : undefined);
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return PgError.syntaxError(message);
}

// What a DO block does, read with PostgreSQL's own PL/pgSQL parser (libpg_query's parsePlPgSQL): the SQL statements
// and expressions in its body (each analysed like a statement of its own, for the tables it touches), whether it
// commits or rolls back inside (then it cannot run inside a transaction of the proxy's), and why the proxy cannot see
// what it does when it cannot (dynamic SQL built at run time, another language, a body it cannot parse). Pure.
import { parsePlPgSQLSync } from 'libpg-query';
import { isObject, type AstObject } from './ast.js';
import type { StatementPlan } from './plan.js';

export interface DoBlockInfo {
  /** Why shardgate cannot tell what the block does, or null. */
  readonly opaque: string | null;
  /** The plans of the SQL in its body (statements, and expressions as `SELECT <expression>`). */
  readonly plans: readonly StatementPlan[];
  /** COMMIT or ROLLBACK inside the body. */
  readonly hasTransactionControl: boolean;
}

/** libpg_query's RawParseMode for a PL/pgSQL expression, and the assignment modes (`target := expression`). */
const PARSE_DEFAULT = 0;
const PARSE_PLPGSQL_EXPR = 2;

/** A string literal alone ('…', with '' escapes): the text EXECUTE runs is known. */
const STRING_LITERAL = /^\s*'((?:[^']|'')*)'\s*$/s;

/**
 * Analyse the DO statement `text` (as written; `language`: its LANGUAGE clause, null for the default plpgsql) with
 * `analyze` (the statement analyser, passed in so this module does not import it back).
 */
export function analyzeDoBlock(
  text: string,
  language: string | null,
  analyze: (sql: string) => StatementPlan[],
): DoBlockInfo {
  if (language !== null && language !== 'plpgsql') {
    return {
      opaque: `it is written in ${language}, which shardgate cannot read`,
      plans: [],
      hasTransactionControl: false,
    };
  }
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(text);
  } catch (err) {
    return {
      opaque: `its body does not parse: ${(err as Error).message}`,
      plans: [],
      hasTransactionControl: false,
    };
  }
  const found = { sql: [] as string[], dynamic: false, hasTransactionControl: false };
  walk(tree, found);
  if (found.dynamic) {
    return {
      opaque: 'it runs SQL built at run time (EXECUTE of an expression)',
      plans: [],
      hasTransactionControl: found.hasTransactionControl,
    };
  }
  const plans: StatementPlan[] = [];
  for (const sql of found.sql) {
    try {
      plans.push(...analyze(sql));
    } catch (err) {
      return {
        opaque: `its statement "${sql.slice(0, 80)}" does not parse: ${(err as Error).message}`,
        plans: [],
        hasTransactionControl: found.hasTransactionControl,
      };
    }
  }
  return { opaque: null, plans, hasTransactionControl: found.hasTransactionControl };
}

interface Found {
  sql: string[];
  dynamic: boolean;
  hasTransactionControl: boolean;
}

function walk(node: unknown, found: Found): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, found);
    return;
  }
  if (!isObject(node)) return;
  for (const key in node) {
    const value = node[key];
    if (key === 'PLpgSQL_stmt_commit' || key === 'PLpgSQL_stmt_rollback') found.hasTransactionControl = true;
    if (key === 'PLpgSQL_stmt_dynexecute' && isObject(value)) {
      dynamicExecute(value, found);
      walk(value.params, found);
      continue;
    }
    if (key === 'PLpgSQL_expr' && isObject(value)) {
      expression(value, found);
      continue;
    }
    walk(value, found);
  }
}

/** EXECUTE '<constant SQL>' is read like a statement of the body; EXECUTE of anything else is dynamic. */
function dynamicExecute(stmt: AstObject, found: Found): void {
  const expr = isObject(stmt.query) ? stmt.query.PLpgSQL_expr : null;
  const query = isObject(expr) && typeof expr.query === 'string' ? expr.query : '';
  const literal = STRING_LITERAL.exec(query);
  if (literal === null) found.dynamic = true;
  else found.sql.push(literal[1].replace(/''/g, "'"));
}

function expression(expr: AstObject, found: Found): void {
  const query = typeof expr.query === 'string' ? expr.query : '';
  const mode = typeof expr.parseMode === 'number' ? expr.parseMode : PARSE_DEFAULT;
  if (mode === PARSE_DEFAULT) found.sql.push(query);
  else if (mode === PARSE_PLPGSQL_EXPR) found.sql.push(`SELECT ${query}`);
  else {
    // An assignment, `target := expression` (or `=`): the expression is what reads tables.
    const at = query.indexOf(':=');
    const eq = at >= 0 ? at + 2 : query.indexOf('=') + 1;
    found.sql.push(`SELECT ${query.slice(eq)}`);
  }
}

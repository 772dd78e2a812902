// An INSERT with the values a sequence would have generated written into it (GeneratedFill, from the analysis): the
// proxy takes them from the sequence of record, so a sharded table's serial and identity columns are unique across
// shards and its sharding key is known before routing. Columns left out are added (with a value in every row; the
// table's column order makes the list explicit when the statement had none), DEFAULT in a row is replaced, and
// GENERATED ALWAYS identities get OVERRIDING SYSTEM VALUE. The client's parameters ($n) are kept as they are. Pure:
// parsed and deparsed with PostgreSQL's parser (pgsql-parser).
import { deparseSync, parseSync } from 'pgsql-parser';
import { PgError } from '../errors/pg-error.js';
import type { GeneratedFill } from './plan.js';

type Node = Record<string, unknown>;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An integer literal (a sequence value: decimal digits, maybe a sign). */
function integerConst(value: string): Node {
  if (!/^-?\d+$/.test(value))
    throw PgError.internal(`a sequence gave a value that is not an integer: ${value}`);
  const n = Number(value);
  // Small values as an int4 constant; larger ones as PostgreSQL writes them, a numeric literal it types as bigint.
  return Number.isSafeInteger(n) && Math.abs(n) < 2 ** 31
    ? { A_Const: { ival: n === 0 ? {} : { ival: n } } }
    : { A_Const: { fval: { fval: value } } };
}

/**
 * `sql` (one INSERT) with `values[i]` — one per row of `fills[i].rows`, in that order — written in. `tableColumns`:
 * the table's columns in order, to write the column list out when the statement has none.
 */
export function fillGeneratedValues(
  sql: string,
  fills: readonly GeneratedFill[],
  values: readonly (readonly string[])[],
  tableColumns: readonly string[],
): string {
  const parsed = parseSync(sql) as { stmts: { stmt: Node }[] };
  const stmt = parsed.stmts[0]?.stmt;
  const insert = isNode(stmt) && isNode(stmt.InsertStmt) ? stmt.InsertStmt : null;
  if (parsed.stmts.length !== 1 || insert === null) throw PgError.internal('expected one INSERT to fill in');
  // DEFAULT VALUES: one row of nothing but what the proxy fills.
  if (!isNode(insert.selectStmt)) {
    insert.selectStmt = { SelectStmt: { valuesLists: [{ List: { items: [] } }], op: 'SETOP_NONE' } };
    insert.cols = [];
  }
  const select = (insert.selectStmt as Node).SelectStmt as Node;
  const rows = (select.valuesLists as Node[]).map((row) => (row.List as Node).items as unknown[]);
  let cols = Array.isArray(insert.cols) ? (insert.cols as Node[]) : [];
  if (cols.length === 0 && rows.some((r) => r.length > 0)) {
    // No column list: the row's items name the table's first columns; write them out before adding others.
    const width = Math.max(...rows.map((r) => r.length));
    if (tableColumns.length < width)
      throw PgError.internal('the table has fewer columns than this INSERT gives');
    cols = tableColumns.slice(0, width).map((name) => ({ ResTarget: { name } }));
  }
  fills.forEach((fill, f) => {
    const given = values[f];
    if (given.length !== fill.rows.length) throw PgError.internal('not as many sequence values as rows');
    if (fill.isAppended) {
      cols.push({ ResTarget: { name: fill.column } });
      rows.forEach((row, i) => row.push(integerConst(given[fill.rows.indexOf(i)] ?? given[0])));
    } else {
      const at = cols.findIndex((c) => (c.ResTarget as Node).name === fill.column);
      fill.rows.forEach((row, i) => (rows[row][at] = integerConst(given[i])));
    }
  });
  insert.cols = cols;
  if (fills.some((f) => f.isAlways)) insert.override = 'OVERRIDING_SYSTEM_VALUE';
  return deparseSync(stmt, { pretty: false });
}

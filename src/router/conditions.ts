// WHERE / ON conditions → what they say about column values: `col = col` equalities (which merge column classes) and
// pins (`col = 5`, `col = $1`, `col IN (…)`, `col = ANY($1)`, IN-subqueries), combined by AND / OR. NOT and other
// operators say nothing usable. Casts around literals and parameters are looked through.
import { asNode, constValue, int, lastName, list, str, stripCasts, unwrap, type AstObject } from './ast.js';
import type { KeySource } from './plan.js';
import { unionSources, type Level, type PinExpr } from './scope.js';

/** What conditions need from the scope: column resolution and the levels built for subqueries. */
export interface ConditionScope {
  resolveKey(level: Level, fields: readonly unknown[]): string | null;
  sublinkLevel(sublink: AstObject): Level | undefined;
}

/** The top-level AND operands of a condition. */
export function conjuncts(expr: unknown): unknown[] {
  if (expr === undefined || expr === null) return [];
  const b = asNode(expr, 'BoolExpr');
  if (b !== null && str(b, 'boolop') === 'AND_EXPR') return list(b, 'args').flatMap(conjuncts);
  return [expr];
}

/** `col = col` (both sides plain column references) → their column keys. */
export function columnEquality(scope: ConditionScope, level: Level, e: unknown): [string, string] | null {
  const x = asNode(e, 'A_Expr');
  if (x === null || str(x, 'kind') !== 'AEXPR_OP' || lastName(list(x, 'name')) !== '=') return null;
  const l = asNode(x.lexpr, 'ColumnRef');
  const r = asNode(x.rexpr, 'ColumnRef');
  if (l === null || r === null) return null;
  const a = scope.resolveKey(level, list(l, 'fields'));
  const b = scope.resolveKey(level, list(r, 'fields'));
  return a !== null && b !== null ? [a, b] : null;
}

/** A condition → what it says about column values (null: nothing usable). */
export function toPin(scope: ConditionScope, level: Level, e: unknown): PinExpr | null {
  const u = unwrap(e);
  if (u === null) return null;
  const f = u.fields;
  switch (u.type) {
    case 'BoolExpr': {
      const op = str(f, 'boolop');
      const items = list(f, 'args').map((a) => toPin(scope, level, a));
      if (op === 'AND_EXPR') {
        const ok = items.filter((p): p is PinExpr => p !== null);
        return ok.length > 0 ? { t: 'and', items: ok } : null;
      }
      if (op === 'OR_EXPR' && items.every((p) => p !== null)) return { t: 'or', items: items as PinExpr[] };
      return null;
    }
    case 'A_Expr':
      return comparisonPin(scope, level, f);
    case 'SubLink': {
      const sub = scope.sublinkLevel(f);
      const first = sub?.targets[0];
      if (sub === undefined || sub.linkKey === null || first === undefined) return null;
      if (first.constants !== null) return { t: 'pin', key: sub.linkKey, sources: first.constants };
      return first.key !== null ? { t: 'sub', key: sub.linkKey, level: sub, innerKey: first.key } : null;
    }
    default:
      return null;
  }
}

function comparisonPin(scope: ConditionScope, level: Level, f: AstObject): PinExpr | null {
  const kind = str(f, 'kind');
  if (lastName(list(f, 'name')) !== '=') return null;
  if (kind === 'AEXPR_OP') {
    const [col, val] = asNode(f.lexpr, 'ColumnRef') !== null ? [f.lexpr, f.rexpr] : [f.rexpr, f.lexpr];
    const cr = asNode(col, 'ColumnRef');
    const src = valueSource(val);
    if (cr === null || src === null) return null;
    const key = scope.resolveKey(level, list(cr, 'fields'));
    return key !== null ? { t: 'pin', key, sources: [src] } : null;
  }
  const cr = asNode(f.lexpr, 'ColumnRef');
  if (cr === null) return null;
  let sources: KeySource[] | null = null;
  if (kind === 'AEXPR_IN') sources = listSources(list(asNode(f.rexpr, 'List'), 'items'));
  else if (kind === 'AEXPR_OP_ANY') sources = arraySources(f.rexpr);
  if (sources === null) return null;
  const key = scope.resolveKey(level, list(cr, 'fields'));
  return key !== null ? { t: 'pin', key, sources } : null;
}

/** Every key a pin expression mentions. */
export function pinKeys(p: PinExpr): string[] {
  switch (p.t) {
    case 'pin':
    case 'sub':
    case 'flow':
      return [p.key];
    case 'and':
    case 'or':
      return p.items.flatMap(pinKeys);
  }
}

/** A literal (integer, numeric or string; casts stripped) or `$n` usable as a shard key. */
export function valueSource(node: unknown): KeySource | null {
  const n = stripCasts(node);
  const p = asNode(n, 'ParamRef');
  if (p !== null) return { kind: 'param', index: int(p, 'number'), isArray: false };
  const c = asNode(n, 'A_Const');
  if (c === null) return null;
  const v = constValue(c);
  return v.kind === 'integer' || v.kind === 'numeric' || v.kind === 'string'
    ? { kind: 'literal', value: v.value }
    : null;
}

function listSources(items: readonly unknown[]): KeySource[] | null {
  const sources = items.map(valueSource);
  if (sources.length === 0 || sources.some((s) => s === null)) return null;
  return unionSources(sources.map((s) => (s === null ? [] : [s])));
}

/** `= ANY($n)`, `= ANY(ARRAY[…])`, `= ANY('{1,2}')` → key sources. */
export function arraySources(node: unknown): KeySource[] | null {
  const n = stripCasts(node);
  const p = asNode(n, 'ParamRef');
  if (p !== null) return [{ kind: 'param', index: int(p, 'number'), isArray: true }];
  const arr = asNode(n, 'A_ArrayExpr');
  if (arr !== null) return listSources(list(arr, 'elements'));
  const c = asNode(n, 'A_Const');
  if (c === null) return null;
  const v = constValue(c);
  // A simple one-dimensional array literal without quoting: '{1,2,3}'.
  const m = v.kind === 'string' ? /^\{([^{}"\\]*)\}$/.exec(v.value.trim()) : null;
  if (m === null) return null;
  const parts = m[1].split(',').map((s) => s.trim());
  if (parts.some((s) => s === '' || s.toLowerCase() === 'null')) return null;
  return unionSources(parts.map((value) => [{ kind: 'literal', value }]));
}

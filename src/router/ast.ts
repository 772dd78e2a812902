// Small type guards and readers over the pgsql-parser (libpg_query 18) JSON tree, which the router treats as
// `unknown`. A node is a one-key wrapper `{ SelectStmt: {...} }`; fields at their default value are omitted, so a
// literal 0, '' or false arrives as an empty object and every reader here has a default.

/** The fields of one unwrapped node. */
export type AstObject = { readonly [key: string]: unknown };

export function isObject(v: unknown): v is AstObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The type name of a wrapped node (`'SelectStmt'` for `{ SelectStmt: {...} }`), or null. */
export function nodeType(node: unknown): string | null {
  if (!isObject(node)) return null;
  for (const k in node) return k;
  return null;
}

/** The fields of a wrapped node of the given type, or null when it is another type. */
export function asNode(node: unknown, type: string): AstObject | null {
  if (!isObject(node)) return null;
  const inner = node[type];
  return isObject(inner) ? inner : null;
}

/** The fields of a wrapped node of any type (with its type name), or null. */
export function unwrap(node: unknown): { type: string; fields: AstObject } | null {
  const type = nodeType(node);
  if (type === null || !isObject(node)) return null;
  const fields = node[type];
  return isObject(fields) ? { type, fields } : null;
}

export function list(o: AstObject | null, key: string): readonly unknown[] {
  const v = o?.[key];
  return Array.isArray(v) ? v : [];
}

export function obj(o: AstObject | null, key: string): AstObject | null {
  const v = o?.[key];
  return isObject(v) ? v : null;
}

export function str(o: AstObject | null, key: string): string | null {
  const v = o?.[key];
  return typeof v === 'string' ? v : null;
}

export function int(o: AstObject | null, key: string): number {
  const v = o?.[key];
  return typeof v === 'number' ? v : 0;
}

export function flag(o: AstObject | null, key: string): boolean {
  return o?.[key] === true;
}

/** The `sval` of a `String` node, or null. */
export function stringValue(node: unknown): string | null {
  const s = asNode(node, 'String');
  if (s === null) return null;
  return str(s, 'sval') ?? '';
}

/** The svals of a list of `String` nodes (stops at the first non-String, e.g. A_Star). */
export function stringList(nodes: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    const s = stringValue(n);
    if (s === null) break;
    out.push(s);
  }
  return out;
}

/** The last name of a qualified function/operator name, lower-case as the parser stores it. */
export function lastName(nodes: readonly unknown[]): string {
  const names = stringList(nodes);
  return names.length > 0 ? names[names.length - 1] : '';
}

/** A constant's value as SQL text: integers and numerics exact (big ones arrive as strings), strings as is. */
export type ConstValue =
  { kind: 'integer' | 'numeric' | 'string' | 'boolean' | 'bitstring'; value: string } | { kind: 'null' };

export function constValue(aConst: AstObject): ConstValue {
  if (aConst.isnull === true) return { kind: 'null' };
  const ival = obj(aConst, 'ival');
  if (ival !== null) return { kind: 'integer', value: String(int(ival, 'ival')) };
  const fval = obj(aConst, 'fval');
  if (fval !== null) {
    const text = str(fval, 'fval') ?? '0';
    // libpg_query gives integers beyond int4 as fval text: keep them "integer" so the key stays exact.
    return { kind: /^-?\d+$/.test(text) ? 'integer' : 'numeric', value: text };
  }
  const sval = obj(aConst, 'sval');
  if (sval !== null) return { kind: 'string', value: str(sval, 'sval') ?? '' };
  const boolval = obj(aConst, 'boolval');
  if (boolval !== null) return { kind: 'boolean', value: flag(boolval, 'boolval') ? 'true' : 'false' };
  const bsval = obj(aConst, 'bsval');
  if (bsval !== null) return { kind: 'bitstring', value: str(bsval, 'bsval') ?? '' };
  return { kind: 'null' };
}

/** Strips `TypeCast` wrappers (`$1::bigint`, `'5'::int8`, `CAST(x AS t)`) and returns the inner node. */
export function stripCasts(node: unknown): unknown {
  let cur = node;
  for (;;) {
    const cast = asNode(cur, 'TypeCast');
    if (cast === null) return cur;
    cur = cast.arg;
  }
}

/** Structural equality of two expressions, ignoring source locations. */
export function sameExpr(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameExpr(a[i], b[i])) return false;
    return true;
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keysA = Object.keys(a).filter((k) => k !== 'location');
  const keysB = Object.keys(b).filter((k) => k !== 'location');
  if (keysA.length !== keysB.length) return false;
  for (const k of keysA) if (!sameExpr(a[k], b[k])) return false;
  return true;
}

/**
 * Visits every wrapped node under `root` (depth first), calling `visit(type, fields)`. Return false from `visit`
 * to skip that node's children.
 */
export function walk(root: unknown, visit: (type: string, fields: AstObject) => boolean | void): void {
  if (Array.isArray(root)) {
    for (const item of root) walk(item, visit);
    return;
  }
  if (!isObject(root)) return;
  const type = nodeType(root);
  const fields = type === null ? null : root[type];
  const first = type === null ? 0 : type.charCodeAt(0);
  // Node types are capitalized (SelectStmt); lower-case keys are plain fields.
  if (type !== null && isObject(fields) && first >= 0x41 && first <= 0x5a) {
    if (visit(type, fields) === false) return;
    for (const k in fields) walkChildren(fields[k], visit);
    return;
  }
  for (const k in root) walkChildren(root[k], visit);
}

function walkChildren(v: unknown, visit: (type: string, fields: AstObject) => boolean | void): void {
  if (typeof v === 'object' && v !== null) walk(v, visit);
}

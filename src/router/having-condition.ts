// HAVING of a fan-out SELECT as a predicate the merge evaluates on merged groups: which forms can be, and the
// columns (select-list or hidden) it reads.
import { asNode, constValue, flag, lastName, list, obj, sameExpr, str, unwrap } from './ast.js';
import type { CompareOperator, HavingCondition, HavingOperand } from './plan.js';
import type { AggregateKinds } from './aggregate-kinds.js';
import type { HiddenColumns } from './hidden-columns.js';
import { contains, hasAggregate, isAggregateCall, type Target } from './select-shape.js';

const COMPARE_OPERATORS: ReadonlySet<string> = new Set(['=', '<>', '<', '<=', '>', '>=']);

/** Casts HAVING constants may carry: types whose comparison the proxy reproduces. */
const HAVING_CAST_TYPES: ReadonlySet<string> = new Set([
  'int2',
  'int4',
  'int8',
  'numeric',
  'float4',
  'float8',
  'text',
  'varchar',
  'bpchar',
]);

const HAVING_FORMS =
  'only comparisons (=, <>, <, <=, >, >=) of aggregates or GROUP BY expressions with each other, constants or ' +
  'parameters, joined by AND, OR and NOT, can be applied after the merge';

/**
 * HAVING as a predicate on merged groups. Aggregates and GROUP BY expressions it names become output columns (the
 * select list's own when it has them, hidden ones otherwise). `groupBy`: the GROUP BY expressions. A string: why it
 * cannot be.
 */
export function havingCondition(
  node: unknown,
  targets: readonly Target[],
  hidden: HiddenColumns,
  kinds: AggregateKinds,
  groupBy: readonly unknown[] = [],
): HavingCondition | string {
  const refuse = (what: string): string =>
    `HAVING with ${what} cannot be merged across shards: ${HAVING_FORMS}`;
  const condition = (n: unknown): HavingCondition | string => {
    const bool = asNode(n, 'BoolExpr');
    if (bool !== null) {
      const args: HavingCondition[] = [];
      for (const a of list(bool, 'args')) {
        const c = condition(a);
        if (typeof c === 'string') return c;
        args.push(c);
      }
      const boolop = str(bool, 'boolop');
      if (boolop === 'NOT_EXPR' && args.length === 1) return { kind: 'not', arg: args[0] };
      if (boolop === 'AND_EXPR') return { kind: 'and', args };
      if (boolop === 'OR_EXPR') return { kind: 'or', args };
      return refuse('this boolean expression');
    }
    // `GROUP BY x > 0 HAVING x > 0`: a boolean GROUP BY expression, not a comparison of x (which is not grouped:
    // as a hidden column the shards would refuse it).
    if (groupBy.some((g) => sameExpr(g, n))) return refuse('a boolean GROUP BY expression');
    const ax = asNode(n, 'A_Expr');
    const opName = ax !== null ? lastName(list(ax, 'name')) : '';
    if (
      ax === null ||
      str(ax, 'kind') !== 'AEXPR_OP' ||
      !COMPARE_OPERATORS.has(opName) ||
      ax.lexpr === undefined
    )
      return refuse(describeHavingNode(n));
    const left = operand(ax.lexpr);
    if (typeof left === 'string') return left;
    const right = operand(ax.rexpr);
    if (typeof right === 'string') return right;
    if (left.kind !== 'column' && right.kind !== 'column') return refuse('a comparison of two constants');
    return { kind: 'compare', op: opName as CompareOperator, left, right };
  };
  const operand = (n: unknown): HavingOperand | string => {
    const cast = asNode(n, 'TypeCast');
    if (cast !== null) {
      const typeName = obj(cast, 'typeName');
      const type = lastName(list(typeName, 'names'));
      const inner = asNode(cast.arg, 'A_Const') !== null || asNode(cast.arg, 'ParamRef') !== null;
      if (inner) {
        if (
          !HAVING_CAST_TYPES.has(type) ||
          list(typeName, 'typmods').length > 0 ||
          list(typeName, 'arrayBounds').length > 0
        )
          return refuse(`a constant cast to ${type}`);
        return constant(cast.arg, type);
      }
    }
    if (asNode(n, 'A_Const') !== null || asNode(n, 'ParamRef') !== null) return constant(n, null);
    const position = targets.findIndex((t) => sameExpr(t.expr, n));
    const call = asNode(n, 'FuncCall');
    if (call !== null && isAggregateCall(call)) {
      const kind = kinds.kindOf(call);
      if (typeof kind !== 'string' || kind === 'ordered')
        return refuse(
          `aggregate ${lastName(list(call, 'funcname'))}${flag(call, 'agg_distinct') ? '(DISTINCT …)' : ''}`,
        );
      const target = position >= 0 ? targets[position] : null;
      // An aggregate in the select list is merged in place (avg from its sum and hidden count, …).
      if (target !== null) return { kind: 'column', position: position + 1 };
      const index = hidden.aggregate(call, n, kind);
      return index === null
        ? refuse('an aggregate')
        : { kind: 'column', position: hiddenPosition(targets, index) };
    }
    if (hasAggregate(n)) return refuse('an expression of aggregates');
    if (contains(n, ['SubLink', 'ParamRef'])) return refuse(describeHavingNode(n));
    if (position >= 0) return { kind: 'column', position: position + 1 };
    return { kind: 'column', position: hiddenPosition(targets, hidden.value(n)) };
  };
  const constant = (n: unknown, castType: string | null): HavingOperand | string => {
    const p = asNode(n, 'ParamRef');
    if (p !== null) return { kind: 'param', index: typeof p.number === 'number' ? p.number : 0, castType };
    const v = constValue(asNode(n, 'A_Const') ?? {});
    if (v.kind === 'null') return { kind: 'literal', value: null, isString: false, castType };
    if (v.kind === 'boolean' || v.kind === 'bitstring') return refuse(`a ${v.kind} constant`);
    return { kind: 'literal', value: v.value, isString: v.kind === 'string', castType };
  };
  return condition(node);
}

function hiddenPosition(targets: readonly Target[], index: number): number {
  return targets.length + index + 1;
}

/** A few words naming a HAVING node the proxy cannot evaluate. */
function describeHavingNode(n: unknown): string {
  const u = unwrap(n);
  if (u === null) return 'this expression';
  switch (u.type) {
    case 'A_Expr': {
      const kind = str(u.fields, 'kind') ?? '';
      if (kind.startsWith('AEXPR_BETWEEN') || kind.startsWith('AEXPR_NOT_BETWEEN')) return 'BETWEEN';
      if (kind === 'AEXPR_IN') return 'IN (…)';
      if (kind === 'AEXPR_LIKE' || kind === 'AEXPR_ILIKE' || kind === 'AEXPR_SIMILAR') return 'LIKE';
      return `the operator ${lastName(list(u.fields, 'name')) || kind}`;
    }
    case 'NullTest':
      return 'IS [NOT] NULL';
    case 'BooleanTest':
      return 'IS [NOT] TRUE/FALSE';
    case 'SubLink':
      return 'a subquery';
    case 'FuncCall':
      return `the function ${lastName(list(u.fields, 'funcname'))}()`;
    default:
      return 'this expression';
  }
}

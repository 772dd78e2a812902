// The columns a fan-out SELECT's shards return after the select list for the merge only (avg's count, sort and
// HAVING expressions, DISTINCT values, ordered aggregates' arrays), and where each one sits.
import { asNode, flag, lastName, list, sameExpr, str, type AstObject } from './ast.js';
import type {
  AggregateItem,
  DistinctValuesAggregate,
  OrderedAggregateItem,
  OrderedAggregateKey,
} from './plan.js';
import { combinedAs } from './aggregate-kinds.js';
import { aggregateLike, aggregatePlaceholder } from './rewrite.js';
import { collationOf, isByteCollation } from './select-shape.js';

/**
 * The columns the shards return after the select list for the merge only: avg's count(x), ORDER BY / HAVING
 * expressions that are not output columns, DISTINCT values and ordered aggregates' arrays. Equal expressions share one
 * column.
 */
export class HiddenColumns {
  readonly exprs: unknown[] = [];
  /** The aggregates among them, as merge items (positions after the select list). */
  readonly aggregates: AggregateItem[] = [];
  /** Hidden indices the shards also GROUP BY: the values of DISTINCT aggregates merged from values. */
  readonly groupBy: number[] = [];
  /** Per hidden column: the 1-based select-list position whose result format it takes (null: text). */
  readonly formatSources: (number | null)[] = [];
  private readonly values: { expr: unknown; index: number }[] = [];

  /** `base`: the select list's length; null when a `*` hides it (then no hidden aggregate has a known position). */
  constructor(private readonly base: number | null) {}

  /** A value that needs no combining (a sort key, or the same in every row of a group): its hidden index. */
  value(expr: unknown): number {
    const known = this.values.find((v) => sameExpr(v.expr, expr));
    if (known !== undefined) return known.index;
    const index = this.add(expr);
    this.values.push({ expr, index });
    return index;
  }

  /** count(x) next to an avg(x) the shards run as sum(x): its 1-based position, or null under a `*`. */
  avgCount(call: AstObject): number | null {
    if (this.base === null) return null;
    return this.base + this.add(aggregateLike(call, 'count')) + 1;
  }

  /**
   * The argument of a DISTINCT aggregate merged from values — `CASE WHEN <filter> THEN x END` under FILTER — which
   * the shards also group by: its 1-based position, or null under a `*`.
   */
  distinctValue(call: AstObject): number | null {
    if (this.base === null) return null;
    const arg = list(call, 'args')[0];
    const filter = call.agg_filter;
    const expr =
      filter === undefined ? arg : { CaseExpr: { args: [{ CaseWhen: { expr: filter, result: arg } }] } };
    const index = this.value(expr);
    if (!this.groupBy.includes(index)) this.groupBy.push(index);
    return this.base + index + 1;
  }

  /**
   * string_agg/array_agg(x ORDER BY k…): `array_agg(x ORDER BY k…)` (in the format of select-list entry `position`,
   * so array_agg's elements come in the client's format) and `array_agg(k ORDER BY k…)` per key, FILTER kept; null
   * under a `*`.
   */
  orderedArrays(
    call: AstObject,
    position: number,
  ): Pick<OrderedAggregateItem, 'valuesPosition' | 'keys'> | null {
    if (this.base === null) return null;
    const base = this.base;
    const source = lastName(list(call, 'funcname')) === 'array_agg' ? position : null;
    const valuesPosition = base + this.array(call, list(call, 'args')[0], source) + 1;
    const keys: OrderedAggregateKey[] = [];
    for (const s of list(call, 'agg_order')) {
      const sb = asNode(s, 'SortBy');
      if (sb === null) return null;
      const dir = str(sb, 'sortby_dir');
      const nulls = str(sb, 'sortby_nulls');
      const descending = dir === 'SORTBY_DESC';
      keys.push({
        position: base + this.array(call, sb.node, null) + 1,
        descending,
        nullsFirst:
          nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : descending,
        isByteCollated: isByteCollation(sb.node),
        collation: collationOf(sb.node),
      });
    }
    return { valuesPosition, keys };
  }

  /** `array_agg(expr ORDER BY <call's order>) FILTER (<call's filter>)`: its hidden index. */
  private array(call: AstObject, expr: unknown, formatSource: number | null): number {
    const arrayCall = orderedArrayCall(call, expr);
    const known = this.values.find((v) => sameExpr(v.expr, arrayCall));
    if (known !== undefined) {
      const current = this.formatSources[known.index];
      if (formatSource === null || current === formatSource) return known.index;
      if (current === null) {
        this.formatSources[known.index] = formatSource;
        return known.index;
      }
    }
    const index = this.add(arrayCall, formatSource);
    if (known === undefined) this.values.push({ expr: arrayCall, index });
    return index;
  }

  /**
   * An aggregate call the select list lacks (HAVING, ORDER BY), merged as `kind` says: the hidden index of the column
   * holding its merged value, or null under a `*`.
   */
  aggregate(call: AstObject, expr: unknown, kind: 'combine' | 'whole' | 'values'): number | null {
    if (this.base === null) return null;
    const known = this.values.find((v) => sameExpr(v.expr, expr));
    if (known !== undefined) return known.index;
    const name = lastName(list(call, 'funcname'));
    const isDistinct = flag(call, 'agg_distinct');
    let index: number;
    if (kind === 'whole') {
      index = this.add(expr);
      this.aggregates.push({ merge: 'whole', position: this.base + index + 1, fn: name, isDistinct });
    } else if (kind === 'values') {
      index = this.add(aggregatePlaceholder(call));
      const valuePosition = this.distinctValue(call) as number;
      this.aggregates.push({
        merge: 'values',
        position: this.base + index + 1,
        fn: name as DistinctValuesAggregate['fn'],
        isDistinct: true,
        valuePosition,
      });
    } else if (name === 'avg') {
      index = this.add(aggregateLike(call, 'sum'));
      const count = this.add(aggregateLike(call, 'count'));
      this.aggregates.push({
        merge: 'combine',
        position: this.base + index + 1,
        fn: 'avg',
        isDistinct,
        countPosition: this.base + count + 1,
      });
    } else {
      index = this.add(expr);
      this.aggregates.push({
        merge: 'combine',
        position: this.base + index + 1,
        fn: combinedAs(name),
        isDistinct,
        countPosition: null,
      });
    }
    this.values.push({ expr, index });
    return index;
  }

  private add(expr: unknown, formatSource: number | null = null): number {
    this.exprs.push(expr);
    this.formatSources.push(formatSource);
    return this.exprs.length - 1;
  }
}

/** `pg_catalog.array_agg(expr ORDER BY …) FILTER (…)` with the ORDER BY and FILTER of an ordered aggregate call. */
function orderedArrayCall(call: AstObject, expr: unknown): unknown {
  const clone = structuredClone(call) as Record<string, unknown>;
  clone.funcname = [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'array_agg' } }];
  clone.args = [structuredClone(expr)];
  delete clone.agg_distinct;
  return { FuncCall: clone };
}

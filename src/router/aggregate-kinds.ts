// How each aggregate call of a fan-out SELECT merges across shards (combine per-shard results — bool_and / bool_or as
// min / max —, take one shard's group whole, merge DISTINCT values, merge ordered arrays), or why it cannot be merged.
import { flag, lastName, list, type AstObject } from './ast.js';
import type { AggregateItem, MergeableAggregate } from './plan.js';
import { MERGEABLE } from './select-shape.js';

/** What the analyzer knows of the sharding key at the statement's top level (from its scope model). */
export interface KeyFacts {
  /** Is `expr` the sharding column of the level's rows (so rows with equal values are on one shard)? */
  isShardKey(expr: unknown): boolean;
  /** Is the level grouped by its sharding column (so each group lies on one shard)? */
  readonly isGroupedByKey: boolean;
}

export const NO_KEY_FACTS: KeyFacts = { isShardKey: () => false, isGroupedByKey: false };

/** How an aggregate merges across shards (see AggregateItem in plan.ts). */
type AggregateMerge = AggregateItem['merge'];

/** Why an aggregate cannot be merged across shards. */
export interface Refusal {
  readonly problem: string;
}

/**
 * Decides how each aggregate call of the statement merges. DISTINCT count/sum/avg add up per shard when their
 * argument is the sharding key — unless another DISTINCT aggregate needs the shards to group by its values, which
 * splits each shard's rows into sub-groups that would count a key once per sub-group: then every DISTINCT aggregate
 * merges from values.
 */
export class AggregateKinds {
  private readonly usesValues: boolean;

  constructor(
    private readonly keys: KeyFacts,
    calls: readonly AstObject[],
  ) {
    this.usesValues =
      !keys.isGroupedByKey &&
      calls.some((c) => isDistinctValueCall(c) && !keys.isShardKey(list(c, 'args')[0]));
  }

  /** Is the level grouped by its sharding column (each group on one shard: any aggregate can be taken whole)? */
  get isGroupedByKey(): boolean {
    return this.keys.isGroupedByKey;
  }

  kindOf(call: AstObject): AggregateMerge | Refusal {
    const name = lastName(list(call, 'funcname'));
    const isDistinct = flag(call, 'agg_distinct');
    const label = `${name}${isDistinct ? '(DISTINCT …)' : ''}`;
    if ((MERGEABLE.has(name) || BOOLEAN_AS.has(name)) && !isDistinct && !flag(call, 'agg_within_group'))
      return 'combine';
    if (this.keys.isGroupedByKey) return 'whole';
    if (isDistinctValueCall(call)) return this.usesValues ? 'values' : 'combine';
    if (MERGEABLE.has(name) && isDistinct && !flag(call, 'agg_within_group')) return 'combine'; // min/max
    if (ORDERED.has(name) && !isDistinct && list(call, 'agg_order').length > 0) return 'ordered';
    if (ORDERED.has(name) && !isDistinct) {
      return {
        problem: `aggregate ${label} without ORDER BY inside cannot be merged across shards (add ORDER BY inside the call to fix the order of its elements)`,
      };
    }
    return { problem: `aggregate ${label} cannot be merged across shards` };
  }
}

const ORDERED: ReadonlySet<string> = new Set(['string_agg', 'array_agg']);

/** bool_and / every are the min of the shards' results (false < true, NULLs ignored), bool_or their max. */
const BOOLEAN_AS: ReadonlyMap<string, 'min' | 'max'> = new Map([
  ['bool_and', 'min'],
  ['every', 'min'],
  ['bool_or', 'max'],
]);

/** The aggregate that combines the shards' results of a 'combine' aggregate `name`: itself, or min/max for booleans. */
export function combinedAs(name: string): MergeableAggregate {
  return BOOLEAN_AS.get(name) ?? (name as MergeableAggregate);
}

/** count/sum/avg(DISTINCT x) of one argument. */
function isDistinctValueCall(call: AstObject): boolean {
  const name = lastName(list(call, 'funcname'));
  return (
    (name === 'count' || name === 'sum' || name === 'avg') &&
    flag(call, 'agg_distinct') &&
    !flag(call, 'agg_within_group') &&
    list(call, 'args').length === 1
  );
}

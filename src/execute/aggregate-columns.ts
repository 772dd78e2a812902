// The merge spec's aggregate columns from a fan-out SELECT's plan: how each aggregate the merge computes is combined
// (select-shape.ts decided it per call: partials combined, a group's one shard's value, DISTINCT values, ordered
// arrays), as 0-based columns of the shards' rows, with string_agg's delimiter read from the Bind when it is a
// parameter. Refuses (0A000) what needs the rewritten statement when the shards run the client's own text.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import type { AggregateColumn } from './merge-spec.js';
import type { BindParams } from '../router/bind-params.js';
import type { AggregateItem, DelimiterSource, SelectMergeInfo } from '../router/plan.js';

/**
 * The aggregates (the select list's and hidden ones) as merge columns. `isRewritten`: the shards run the plan's
 * shard query (hidden columns, placeholders); `hint` goes with a refusal.
 */
export function aggregateColumns(
  select: SelectMergeInfo,
  params: BindParams | null,
  isRewritten: boolean,
  hint: string,
): AggregateColumn[] {
  return select.aggregates.map((a) => aggregateColumn(a, params, isRewritten, hint));
}

function aggregateColumn(
  a: AggregateItem,
  params: BindParams | null,
  isRewritten: boolean,
  hint: string,
): AggregateColumn {
  const column = a.position - 1;
  switch (a.merge) {
    case 'whole':
      return { column, fn: 'whole' };
    case 'combine':
      if (a.fn !== 'avg') return { column, fn: a.fn };
      if (a.countPosition === null || !isRewritten)
        throw PgError.featureNotSupported(
          'avg() across shards is not supported here; use sum() and count()',
          hint,
        );
      return { column, fn: 'avg', countColumn: a.countPosition - 1 };
    case 'values':
      if (!isRewritten) throw notRewritten(`${a.fn}(DISTINCT …)`, hint);
      return { column, fn: a.fn, distinctColumn: a.valuePosition - 1 };
    case 'ordered':
      if (!isRewritten) throw notRewritten(`${a.fn}(… ORDER BY …)`, hint);
      return {
        column,
        fn: a.fn,
        ordered: {
          valuesColumn: a.valuesPosition - 1,
          keys: a.keys.map((k) => ({
            column: k.position - 1,
            isDescending: k.descending,
            isNullsFirst: k.nullsFirst,
            ...(k.isByteCollated ? { isByteCollated: true } : {}),
            ...(k.collation !== null && !k.isByteCollated ? { collation: k.collation } : {}),
          })),
          delimiter: a.delimiter === null ? null : delimiterBytes(a.delimiter, params),
        },
      };
  }
}

function notRewritten(what: string, hint: string): PgError {
  return PgError.featureNotSupported(`${what} across shards is not supported in this statement`, hint);
}

/** string_agg's delimiter: the literal, or the Bind parameter's bytes (text's binary form is its text); null: NULL. */
function delimiterBytes(source: DelimiterSource, params: BindParams | null): Buffer | null {
  if (source.kind === 'literal') return source.value === null ? null : Buffer.from(source.value, 'utf8');
  const value = params?.values[source.index - 1];
  if (value === undefined)
    throw PgError.malformedMessage(
      `string_agg's delimiter is parameter $${source.index}, which the Bind lacks`,
    );
  return value === null ? null : Buffer.from(value);
}

// The fast way to route a batch of a streamed INSERT … SELECT (insert-stream.ts): the rows' shards are found from
// their key values as the query returned them, and each shard's INSERT is written from the statement's text parts —
// no parse of the batch (parsing and splitting a VALUES list of thousands of rows costs more than moving them). Used
// only where it gives what routing the whole INSERT would: a sharded target whose key column the INSERT lists, fed a
// value of the key's own type, nothing to fill from sequences, no manual routing; otherwise (null) the batch is routed
// as any INSERT.
import { Frontend } from '../protocol/codes.js';
import { PASS_THROUGH_SPEC } from '../execute/merge-spec.js';
import { shardForLiteral } from '../sharding/shard-of.js';
import type { ShardedColumn, ShardKeyType } from '../sharding/schema.js';
import type { InsertSelectParts } from '../router/insert-select.js';
import type { StatementPlan } from '../router/plan.js';
import { MULTI_SHARD_WRITE, type BatchTarget } from '../frontend/batch-target.js';
import { rebuildRequest, type RequestStatement, type SplitPart } from '../frontend/request-rewrite.js';

/** Where a batch's rows go: the key's position in each row, and how its value maps to a shard. */
export interface BatchSplitter {
  readonly keyIndex: number;
  readonly column: ShardedColumn;
  readonly shardCount: number;
}

/** What the splitter needs to know of the session's routing. */
export interface SplitRouting {
  analyze(sql: string): StatementPlan[];
  readonly shardCount: number;
  readonly sessionShard: number | null;
  readonly sessionShardingKey: string | null;
}

/**
 * Type OIDs whose text output is read as the key type's own input, unchanged by the column's conversion (so the shard is
 * the one routing the INSERT would find): the key's type, and narrower integers for integer keys.
 */
const KEY_TYPE_OIDS: Record<ShardKeyType, readonly number[]> = {
  bigint: [20, 23, 21],
  integer: [23, 21],
  text: [25, 1043],
  uuid: [2950],
};

/**
 * The splitter for batches of `columns` values typed `typeOids`, or null when batches must be routed whole. Found by
 * routing a one-row INSERT of parameters past the client's: the parameter that lands in the key column names it.
 */
export function batchSplitter(
  routing: SplitRouting,
  parts: InsertSelectParts,
  statement: RequestStatement,
  typeOids: readonly number[],
): BatchSplitter | null {
  if (routing.sessionShard !== null || routing.sessionShardingKey !== null || typeOids.length === 0)
    return null;
  const first = statement.paramCount + 1;
  const params = typeOids.map((_, i) => `$${first + i}`).join(', ');
  let plan: StatementPlan | undefined;
  try {
    plan = routing.analyze(`${parts.lead}${parts.head}VALUES (${params})${parts.tail}`)[0];
  } catch {
    return null; // routed whole: the router says what is wrong (or learns what it lacks)
  }
  const insert = plan?.insert ?? null;
  const column = plan?.shardKey?.column ?? null;
  if (plan === undefined || insert === null || column === null) return null;
  if (plan.tables[0]?.sharding !== 'sharded' || plan.manualShard !== null || plan.manualShardingKey !== null)
    return null;
  if (insert.columnsLookup !== null || insert.generated.length > 0 || insert.insertKeys?.length !== 1)
    return null;
  const key = insert.insertKeys[0];
  if (key === null || key.kind !== 'param' || key.isArray || key.index < first) return null;
  const keyIndex = key.index - first;
  if (!KEY_TYPE_OIDS[column.keyType].includes(typeOids[keyIndex] ?? 0)) return null;
  return { keyIndex, column, shardCount: routing.shardCount };
}

/** Whether the client's request describes its statement (a split cannot answer that once: routed whole, refused). */
export function describesStatement(types: readonly number[], frames: readonly Buffer[]): boolean {
  return types.some((t, i) => t === Frontend.Describe && frames[i][5] === 0x53 /* S */);
}

/**
 * The batch as a split INSERT: each shard's rows written into the statement, with the client's Bind (every client
 * parameter declared, as the whole INSERT would have them); RETURNING rows come back in the batch's row order.
 */
export function splitBatch(
  splitter: BatchSplitter,
  rows: readonly string[],
  keys: readonly string[],
  parts: InsertSelectParts,
  statement: RequestStatement,
  paramTypes: readonly number[],
  client: { types: readonly number[]; frames: readonly Buffer[] },
): Extract<BatchTarget, { kind: 'split' }> {
  const rowShards = keys.map((k) => shardForLiteral(splitter.column, splitter.shardCount, k));
  const shards = [...new Set(rowShards)].sort((a, b) => a - b);
  const local = new Map(shards.map((s, i) => [s, i]));
  const byShard: string[][] = shards.map(() => []);
  rows.forEach((row, i) => byShard[local.get(rowShards[i]) as number].push(row));
  const paramMap = Array.from({ length: statement.paramCount }, (_, i) => i + 1);
  const source = { text: statement.text, paramTypes, isQuery: statement.isQuery };
  const partsOut: SplitPart[] = byShard.map((shardRows) =>
    rebuildRequest(
      `${parts.lead}${parts.head}VALUES ${shardRows.join(', ')}${parts.tail}`,
      paramMap,
      source,
      client.types,
      client.frames,
      statement.parseIndex,
      statement.bindIndex,
    ),
  );
  return {
    kind: 'split',
    shards,
    parts: partsOut,
    spec: { ...PASS_THROUGH_SPEC, rowShards: rowShards.map((s) => local.get(s) as number) },
    clientParse: statement.parseIndex >= 0 ? client.frames[statement.parseIndex] : null,
    ...MULTI_SHARD_WRITE,
  };
}

// ReplyMerger: the replies of one statement run on N shards → the one reply the client expects. Pure: whole backend
// frames in (tagged with their shard, up to and including the frame that ends the statement there — CommandComplete,
// EmptyQueryResponse, PortalSuspended or ErrorResponse; never ReadyForQuery), client frames out through `emit`, as
// early as correctness allows. A thin façade: it chooses the row strategy once from the MergeSpec and wires it to the
// shared bookkeeping (merged-reply.ts: replies before the rows, notices, errors, tags; COPY TO via copy-out-merge.ts).
//
// Row strategies (row-merge.ts), in order of precedence:
// - GROUP BY (group-merge.ts): rows folded into their groups as they arrive; HAVING, ORDER BY, LIMIT at the end.
// - aggregates without GROUP BY (aggregate-merge.ts): each shard's one row, combined at the end; HAVING.
// - ORDER BY (sorted-merge.ts): k-way merge, LIMIT stops it; collated text compared by rank (collation-ranks.ts).
// - split INSERT … RETURNING (stream-merge.ts): rows in the order of the original VALUES rows.
// - anything else (stream-merge.ts): rows stream through as they arrive.
// Every strategy sends its rows through RowOutput (row-output.ts: DISTINCT ON, OFFSET, LIMIT, hidden columns dropped).
// Frames are only read during `push`: a row kept past it is copied (the caller may read server sockets into reused
// buffers), once. What DISTINCT values and ordered aggregates hold is bounded per statement (held-bytes.ts, 54000).
// A batch that never reaches an end frame (Describe without Execute) is the caller's to handle: `isDone` stays false.
import type { PgError } from '../errors/pg-error.js';
import { AggregateMerge } from './aggregate-merge.js';
import type { RankRequest } from './collation-ranks.js';
import { GroupMerge } from './group-merge.js';
import { AGGREGATE_VALUES_MAX_BYTES, HeldBytes } from './held-bytes.js';
import { MergedReply } from './merged-reply.js';
import { mergeSpecProblem, type MergeSpec } from './merge-spec.js';
import { ResultColumns } from './result-columns.js';
import type { MergeParts, RowMerge } from './row-merge.js';
import { RowOutput } from './row-output.js';
import { SortedMerge } from './sorted-merge.js';
import { StreamMerge, ValuesOrderMerge } from './stream-merge.js';

export type { RankRequest } from './collation-ranks.js';
export { MERGE_QUEUE_MAX_BYTES, MERGE_QUEUE_MAX_ROWS } from './row-queue.js';
export { RANKED_SORT_MAX_BYTES } from './sorted-merge.js';

export class ReplyMerger {
  private readonly reply: MergedReply;
  private readonly rows: RowMerge;

  /** `aggregateValuesMaxBytes`: the bound of what DISTINCT values and ordered aggregates hold (tests lower it). */
  constructor(
    shardCount: number,
    spec: MergeSpec,
    emit: (frame: Buffer) => void,
    { aggregateValuesMaxBytes = AGGREGATE_VALUES_MAX_BYTES }: { aggregateValuesMaxBytes?: number } = {},
  ) {
    const held = new HeldBytes(aggregateValuesMaxBytes);
    if (!Number.isInteger(shardCount) || shardCount < 1) {
      throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
    }
    const problem = mergeSpecProblem(spec);
    if (problem !== null) throw new RangeError(`bad merge spec: ${problem}`);
    const columns = new ResultColumns(spec);
    const output = new RowOutput(spec, columns, emit);
    this.rows = rowMergeFor({ shardCount, spec, columns, output, held });
    this.reply = new MergedReply(shardCount, spec, emit, columns, output, this.rows);
  }

  /** Every shard has ended the statement (the merged reply is complete). */
  get isDone(): boolean {
    return this.reply.isDone;
  }

  /** The statement failed: an error (a shard's or the merger's) was emitted. */
  get hasFailed(): boolean {
    return this.reply.hasFailed;
  }

  /**
   * Flow control: `shard`'s queue holds more than MERGE_QUEUE_MAX_ROWS rows or MERGE_QUEUE_MAX_BYTES bytes (the merge
   * waits for another shard's next row meanwhile). The caller stops reading that shard until `isQueueDrained` — safe
   * as long as the shards the merge waits for are being read: a shard is only waited for while its queue is empty.
   * GROUP BY, DISTINCT and aggregate strategies keep what they need outside these queues (every group until the
   * end): never full.
   */
  isQueueFull(shard: number): boolean {
    return this.rows.isQueueFull(shard);
  }

  /** Flow control: `shard`'s queue is back to half the bounds of `isQueueFull` (or less): read it again. */
  isQueueDrained(shard: number): boolean {
    return this.rows.isQueueDrained(shard);
  }

  /** One backend frame of `shard` (read only during the call). */
  push(shard: number, frame: Buffer): void {
    this.reply.push(shard, frame);
  }

  /**
   * Every shard's rows are in, and their order needs the database's collation for text keys: the caller asks a shard
   * to order `rankRequest().values` and hands the order back with `setRanks` (the merge and its end wait until then).
   */
  get needsRanks(): boolean {
    return this.rows.isAwaitingRanks && !this.reply.hasFailed && this.reply.isDone;
  }

  /** What to order: the distinct text key values held, in which collation, from which table columns. */
  rankRequest(): RankRequest {
    return this.rows.rankRequest();
  }

  /** The database's order of `rankRequest().values` (value → position): the merge runs now, then the reply ends. */
  setRanks(ranks: Map<string, number>): void {
    this.reply.finishWithRanks(ranks);
  }

  /** The request failed in the proxy itself (e.g. a COPY row it cannot route): `err` is the one error emitted. */
  abort(err: PgError): void {
    this.reply.fail(err);
  }
}

/** The row strategy for `spec`, chosen once: GROUP BY, then aggregates, then ORDER BY, then VALUES order, else stream. */
function rowMergeFor(parts: MergeParts): RowMerge {
  const { spec } = parts;
  if (spec.groupBy !== undefined) return new GroupMerge(parts);
  if (spec.aggregates !== null) return new AggregateMerge(parts);
  if (spec.orderBy.length > 0) return new SortedMerge(parts);
  if (spec.rowShards !== undefined)
    return new ValuesOrderMerge(parts.shardCount, spec.rowShards, parts.output);
  return new StreamMerge(parts.output);
}

// The row strategy of a merge: how the shards' DataRows of one statement become the client's rows. ReplyMerger picks
// one per statement from its MergeSpec (stream-merge.ts, sorted-merge.ts, aggregate-merge.ts, group-merge.ts), feeds
// it the rows of a statement that has not failed, tells it when each shard ends, and asks it for what it held once
// every shard has. The defaults here are those of a strategy that holds nothing.
import type { HeldBytes } from './held-bytes.js';
import type { MergeSpec } from './merge-spec.js';
import type { RankRequest } from './collation-ranks.js';
import type { ResultColumns } from './result-columns.js';
import type { RowOutput } from './row-output.js';

/** What a strategy works with: the spec, the result's columns, the row stream's exit and the statement's memory bound. */
export interface MergeParts {
  readonly shardCount: number;
  readonly spec: MergeSpec;
  readonly columns: ResultColumns;
  readonly output: RowOutput;
  /** What DISTINCT values and ordered aggregates' elements hold, all groups together (bounded). */
  readonly held: HeldBytes;
}

export abstract class RowMerge {
  /** A DataRow of `shard` (a view the caller may reuse after the call: copy what is kept). Throws PgError to fail. */
  abstract onRow(shard: number, frame: Buffer): void;

  /** `shard` has ended the statement (also after a failure). */
  onShardEnd(_shard: number): void {}

  /** Every shard ended and nothing failed: send what is held. False: the rows wait for `setRanks` first. */
  finish(): boolean {
    return true;
  }

  /** The statement failed: let go of what is held. */
  drop(): void {}

  /** Flow control (ReplyMerger.isQueueFull): stop reading `shard` until `isQueueDrained`. */
  isQueueFull(_shard: number): boolean {
    return false;
  }

  isQueueDrained(_shard: number): boolean {
    return true;
  }

  /** Text ORDER BY keys in a collation that is not bytes wait for the database's order of their values. */
  get isAwaitingRanks(): boolean {
    return false;
  }

  /** What to order for `setRanks` (only meaningful while `isAwaitingRanks`). */
  rankRequest(): RankRequest {
    return { values: [], collation: null, columns: [] };
  }

  /** The database's order of `rankRequest().values`: what waited for it is merged now (ReplyMerger then finishes). */
  setRanks(_ranks: Map<string, number>): void {}
}

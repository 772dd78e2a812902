// ReplyMerger: the replies of one statement run on N shards → the one reply the client expects. Pure: whole backend
// frames in (tagged with their shard, up to and including the frame that ends the statement there — CommandComplete,
// EmptyQueryResponse, PortalSuspended or ErrorResponse; never ReadyForQuery), client frames out through `emit`, as
// early as correctness allows. It keeps the bookkeeping every merged reply shares and hands the rows to one row
// strategy (row-merge.ts), chosen once from the MergeSpec, in order of precedence:
// - GROUP BY (group-merge.ts): rows folded into their groups as they arrive; HAVING, ORDER BY, LIMIT at the end.
// - aggregates without GROUP BY (aggregate-merge.ts): each shard's one row, combined at the end; HAVING.
// - ORDER BY (sorted-merge.ts): k-way merge, LIMIT stops it; collated text compared by rank (collation-ranks.ts).
// - split INSERT … RETURNING (stream-merge.ts): rows in the order of the original VALUES rows.
// - anything else (stream-merge.ts): rows stream through as they arrive.
// Every strategy sends its rows through RowOutput (row-output.ts: DISTINCT ON, OFFSET, LIMIT, hidden columns dropped).
//
// The shared bookkeeping:
// - Replies before the rows (ParseComplete, BindComplete, ParameterDescription, NoData, RowDescription,
//   CopyIn/OutResponse…) are matched by position: the first shard to send the i-th one has it emitted, the others'
//   i-th must be of the same type; RowDescriptions must agree on column count, formats and built-in type OIDs (user
//   types such as enums have per-database OIDs, so those are not compared), else XX000. The client's RowDescription
//   drops hidden columns and types avg columns as avg (result-columns.ts).
// - NoticeResponse (and NotificationResponse/ParameterStatus, should one come) from every shard is passed on: all of
//   them, not deduplicated — N shards raising the same NOTICE show it N times, as N sessions would — except for a
//   broadcast statement, whose first shard speaks for all.
// - DataRows go to the row strategy (a replicated write's from the first shard only); COPY TO data to CopyOutMerge.
// - CommandComplete: combined (command-tag.ts); SELECT reports the rows sent. EmptyQueryResponse: once.
// - ErrorResponse from a shard: the statement failed. That shard's error goes out once, after the rows already sent,
//   with the shard in its Detail (errors/shard-detail.ts); later frames of the statement are dropped, only their end
//   is noted. The merger's own errors (shapes, tags, unsupported, a strategy's PgError) end the statement the same
//   way, and the strategy lets go of what it held.
// - PortalSuspended (Execute with a row limit) is not merged: with more than one shard, the first one seen fails the
//   statement with 0A000 (the shards' rows would exceed the limit and the portal cannot be resumed consistently).
// Frames are only read during `push`: a row kept past it is copied (the caller may read server sockets into reused
// buffers), once. What DISTINCT values and ordered aggregates hold is bounded per statement (held-bytes.ts, 54000).
// A batch that never reaches an end frame (Describe without Execute) is the caller's to handle: `isDone` stays false.
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';
import { readRowDescription } from '../protocol/rows.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { withShardInDetail } from '../errors/shard-detail.js';
import { combineCommandTags, commandComplete, parseCommandTag, type CommandTag } from './command-tag.js';
import { CopyOutMerge } from './copy-out-merge.js';
import { FIRST_USER_OID, type ColumnType } from './value-compare.js';
import { AggregateMerge } from './aggregate-merge.js';
import type { RankRequest } from './collation-ranks.js';
import { GroupMerge } from './group-merge.js';
import { AGGREGATE_VALUES_MAX_BYTES, HeldBytes } from './held-bytes.js';
import { CHECKED_SPECS, mergeSpecProblem, type MergeSpec } from './merge-spec.js';
import { ResultColumns } from './result-columns.js';
import type { MergeParts, RowMerge } from './row-merge.js';
import { RowOutput } from './row-output.js';
import { SortedMerge } from './sorted-merge.js';
import { StreamMerge, ValuesOrderMerge } from './stream-merge.js';

export type { RankRequest } from './collation-ranks.js';
export { MERGE_QUEUE_MAX_BYTES, MERGE_QUEUE_MAX_ROWS } from './row-queue.js';
export { RANKED_SORT_MAX_BYTES } from './sorted-merge.js';

const EMPTY_QUERY_RESPONSE = Buffer.from([Backend.EmptyQueryResponse, 0, 0, 0, 4]);
const PORTAL_SUSPENDED = Buffer.from([Backend.PortalSuspended, 0, 0, 0, 4]);

/** One shard's progress through the statement's reply. */
class ShardProgress {
  isEnded = false;
  endType = 0;
  tag: CommandTag | null = null;
  headerCount = 0;
}

export class ReplyMerger {
  private readonly shards: ShardProgress[];
  /** Type bytes of the replies before the rows, by position, as emitted. */
  private readonly headerTypes: number[] = [];
  /** The RowDescriptions among them, by position: each shard's must agree with the first one sent there. */
  private readonly headerShapes: ({ shape: ColumnType[]; shard: number } | undefined)[] = [];
  private isFailed = false;
  /** Some shard is past its replies before the rows (sent a row or ended): no new kind of header may appear. */
  private hasProgressed = false;
  /** A RowDescription or DataRow was seen: SELECT's count is the rows sent. */
  private returnsRows = false;
  private endedCount = 0;
  /** COPY TO STDOUT: created at its first frame. */
  private copyOut: CopyOutMerge | null = null;

  private readonly spec: MergeSpec;
  private readonly emit: (frame: Buffer) => void;
  private readonly columns: ResultColumns;
  private readonly output: RowOutput;
  /** The row strategy, chosen once from the spec (rowMergeFor). */
  private readonly rows: RowMerge;

  /** `aggregateValuesMaxBytes`: the bound of what DISTINCT values and ordered aggregates hold (tests lower it). */
  constructor(
    shardCount: number,
    spec: MergeSpec,
    emit: (frame: Buffer) => void,
    { aggregateValuesMaxBytes = AGGREGATE_VALUES_MAX_BYTES }: { aggregateValuesMaxBytes?: number } = {},
  ) {
    if (!Number.isInteger(shardCount) || shardCount < 1) {
      throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
    }
    // A spec routing keeps for its plan was checked when it was kept (frozen since).
    const problem = CHECKED_SPECS.has(spec) ? null : mergeSpecProblem(spec);
    if (problem !== null) throw new RangeError(`bad merge spec: ${problem}`);
    this.spec = spec;
    this.emit = emit;
    this.columns = new ResultColumns(spec);
    this.output = new RowOutput(spec, this.columns, emit);
    const held = new HeldBytes(aggregateValuesMaxBytes);
    this.rows = rowMergeFor({ shardCount, spec, columns: this.columns, output: this.output, held });
    this.shards = Array.from({ length: shardCount }, () => new ShardProgress());
  }

  /**
   * The result's column types as a Describe of the portal the proxy added gave them (the client never sees it): they
   * win over the descriptions the client sees, and the first one counts.
   */
  noteColumnTypes(types: readonly ColumnType[]): void {
    this.columns.noteColumnTypes(types);
  }

  /** Every shard has ended the statement (the merged reply is complete). */
  get isDone(): boolean {
    return this.endedCount === this.shards.length;
  }

  /** The statement failed: an error (a shard's or the merger's) was emitted. */
  get hasFailed(): boolean {
    return this.isFailed;
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

  /**
   * Every shard's rows are in, and their order needs the database's collation for text keys: the caller asks a shard
   * to order `rankRequest().values` and hands the order back with `setRanks` (the merge and its end wait until then).
   */
  get needsRanks(): boolean {
    return this.rows.isAwaitingRanks && !this.isFailed && this.isDone;
  }

  /** What to order: the distinct text key values held, in which collation, from which table columns. */
  rankRequest(): RankRequest {
    return this.rows.rankRequest();
  }

  /** One backend frame of `shard` (read only during the call). */
  push(shard: number, frame: Buffer): void {
    const reply = this.shards[shard];
    if (reply === undefined) {
      throw new RangeError(`shard ${shard} is not one of the ${this.shards.length} shards of this statement`);
    }
    if (reply.isEnded) return;
    try {
      this.dispatch(shard, reply, frame);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.abort(
        err instanceof PgError ? err : PgError.internal(`could not merge the shards' replies: ${why}`),
      );
    }
  }

  /** The database's order of `rankRequest().values` (value → position): the merge runs now, then the reply ends. */
  setRanks(ranks: Map<string, number>): void {
    if (this.isFailed) return;
    try {
      this.rows.setRanks(ranks);
      this.finish();
    } catch (err) {
      this.abort(err instanceof PgError ? err : PgError.internal(String(err)));
    }
  }

  /**
   * The statement failed: `err` is the one error the client gets (none if one was already emitted) — the merger's
   * own, or the proxy's (e.g. a COPY row it cannot route).
   */
  abort(err: PgError): void {
    if (this.isFailed) return;
    this.markFailed();
    this.emit(err.toBuffer());
  }

  private dispatch(shard: number, reply: ShardProgress, frame: Buffer): void {
    switch (frame[0]) {
      case Backend.DataRow:
        if (this.spec.isReplicated === true && shard !== 0) return; // the same rows exist on every shard
        this.hasProgressed = true;
        this.returnsRows = true;
        if (!this.isFailed) this.rows.onRow(shard, frame);
        return;
      case Backend.CopyData:
        this.hasProgressed = true;
        if (!this.isFailed) this.copyOutMerge().onData(shard, frame);
        return;
      case Backend.CommandComplete:
        reply.tag = parseCommandTag(frame);
        this.onEnd(shard, reply, Backend.CommandComplete);
        return;
      case Backend.EmptyQueryResponse:
        this.onEnd(shard, reply, Backend.EmptyQueryResponse);
        return;
      case Backend.PortalSuspended:
        if (this.shards.length > 1) {
          this.abort(
            PgError.featureNotSupported(
              'row-limited Execute across shards is not supported yet',
              'Execute with a row limit of 0 (all rows), or use a cursor on a single shard.',
            ),
          );
        }
        this.onEnd(shard, reply, Backend.PortalSuspended);
        return;
      case Backend.ErrorResponse:
        if (!this.isFailed) {
          this.markFailed();
          this.emit(withShardInDetail(frame, shard));
        }
        this.onEnd(shard, reply, Backend.ErrorResponse);
        return;
      case Backend.NoticeResponse:
      case Backend.ParameterStatus:
        // A statement every shard runs for one effect (DDL, SET): the first shard's notices speak for all.
        if (this.spec.isBroadcast === true && shard !== 0) return;
        if (!this.isFailed) this.emit(frame);
        return;
      case Backend.NotificationResponse:
        if (!this.isFailed) this.emit(frame);
        return;
      case Backend.CopyDone:
        this.copyOutMerge().onDone();
        return;
      default:
        this.onHeader(shard, reply, frame);
    }
  }

  private copyOutMerge(): CopyOutMerge {
    return (this.copyOut ??= new CopyOutMerge(
      this.shards.length,
      this.spec.copyOutHeader === true,
      this.emit,
    ));
  }

  private onHeader(shard: number, reply: ShardProgress, frame: Buffer): void {
    const index = reply.headerCount++;
    if (this.isFailed) return;
    const type = frame[0];
    if (index < this.headerTypes.length) {
      if (this.headerTypes[index] !== type) {
        this.abort(
          differentReplies(
            `shard ${shard} sent '${charOf(type)}' where another sent '${charOf(this.headerTypes[index])}'`,
          ),
        );
      } else if (type === Backend.RowDescription) {
        this.checkRowShape(shard, frame, index);
      }
      return;
    }
    if (this.hasProgressed) {
      this.abort(differentReplies(`shard ${shard} sent '${charOf(type)}' after another shard's rows or end`));
      return;
    }
    this.headerTypes.push(type);
    if (type === Backend.CopyOutResponse) this.copyOutMerge().start(frame);
    if (type === Backend.RowDescription) {
      const shape = readRowDescription(frame);
      this.headerShapes[index] = { shape, shard };
      this.columns.noteDescription(shape, this.headerTypes[index - 1] === Backend.ParameterDescription);
      this.returnsRows = true;
      if (this.columns.hiddenCount > 0) {
        this.emit(this.columns.clientRowDescription(frame));
        return;
      }
    }
    this.emit(frame);
  }

  private checkRowShape(shard: number, frame: Buffer, index: number): void {
    const { shape: first, shard: firstShard } = this.headerShapes[index] as {
      shape: ColumnType[];
      shard: number;
    };
    const shape = readRowDescription(frame);
    const isSame =
      shape.length === first.length &&
      shape.every(
        (c, i) =>
          c.format === first[i].format &&
          (c.typeOid === first[i].typeOid ||
            c.typeOid >= FIRST_USER_OID ||
            first[i].typeOid >= FIRST_USER_OID),
      );
    if (!isSame) {
      this.abort(
        new PgError(
          'ERROR',
          SqlState.InternalError,
          'shards returned different row shapes',
          `shard ${firstShard}: ${describeShape(first)}; shard ${shard}: ${describeShape(shape)}`,
        ),
      );
    }
  }

  private onEnd(shard: number, reply: ShardProgress, type: number): void {
    reply.isEnded = true;
    reply.endType = type;
    this.endedCount++;
    this.hasProgressed = true;
    if (!this.isFailed && type !== Backend.ErrorResponse && reply.headerCount < this.headerTypes.length) {
      this.abort(
        differentReplies(
          `shard ${shard} ended after ${reply.headerCount} of ${this.headerTypes.length} replies`,
        ),
      );
    }
    this.rows.onShardEnd(shard);
    if (this.endedCount === this.shards.length) this.finish();
  }

  /** Every shard has ended: what the strategy held, COPY's end, then the one end frame (unless rows await ranks). */
  private finish(): void {
    if (this.isFailed) return;
    const endType = this.shards[0].endType;
    if (this.shards.some((s) => s.endType !== endType)) {
      const ends = this.shards.map((s, i) => `shard ${i}: '${charOf(s.endType)}'`).join(', ');
      this.abort(differentReplies(`the statement ended differently (${ends})`));
      return;
    }
    if (!this.rows.finish()) return; // setRanks merges the rows and ends the reply
    this.copyOut?.finish();
    switch (endType) {
      case Backend.CommandComplete: {
        const tags = this.shards.map((s) => s.tag as CommandTag);
        const tag =
          this.spec.isReplicated === true
            ? tags.every((t) => t.text === tags[0].text)
              ? tags[0].text
              : null
            : combineCommandTags(tags, this.returnsRows ? this.output.sent : null);
        if (tag === null) {
          const detail = tags.map((t, i) => `shard ${i}: ${t.text}`).join(', ');
          this.abort(
            new PgError('ERROR', SqlState.InternalError, 'shards returned different command tags', detail),
          );
        } else {
          this.emit(commandComplete(tag));
        }
        return;
      }
      case Backend.EmptyQueryResponse:
        this.emit(EMPTY_QUERY_RESPONSE);
        return;
      case Backend.PortalSuspended: // one shard only: more fail on arrival
        this.emit(PORTAL_SUSPENDED);
    }
  }

  private markFailed(): void {
    this.isFailed = true;
    this.rows.drop();
  }
}

function describeShape(shape: readonly ColumnType[]): string {
  const columns = shape.map((c) => (c.format === 0 ? `${c.typeOid}` : `${c.typeOid}/binary`));
  return `${shape.length} columns (type OIDs ${columns.join(', ')})`;
}

function differentReplies(detail: string): PgError {
  return new PgError('ERROR', SqlState.InternalError, 'shards returned different replies', detail);
}

function charOf(type: number): string {
  return String.fromCharCode(type);
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

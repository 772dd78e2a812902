// ReplyMerger: the replies of one statement run on N shards → the one reply the client expects. Pure: whole backend
// frames in (tagged with their shard, up to and including the frame that ends the statement there — CommandComplete,
// EmptyQueryResponse, PortalSuspended or ErrorResponse; never ReadyForQuery), client frames out through `emit`, as
// early as correctness allows.
//
// - Replies before the rows (ParseComplete, BindComplete, ParameterDescription, NoData, RowDescription,
//   CopyIn/OutResponse…) are matched by position: the first shard to send the i-th one has it emitted, the others'
//   i-th must be of the same type; RowDescriptions must agree on column count, formats and built-in type OIDs (user
//   types such as enums have per-database OIDs, so those are not compared), else XX000.
// - NoticeResponse (and NotificationResponse/ParameterStatus, should one come) from every shard is passed on: all of
//   them, not deduplicated — N shards raising the same NOTICE show it N times, as N sessions would.
// - DataRows: without ORDER BY they stream through as they arrive (the original frame object, no copy), with
//   OFFSET/LIMIT over the combined stream. With ORDER BY, a k-way merge (heap of shards, ties by shard number): the
//   smallest head row goes out once every shard still running has a row waiting. With aggregates, each shard's one
//   row is kept and one combined row goes out at the end; with GROUP BY, each row is folded into its group as it
//   arrives (group-fold.ts: the group's first row plus its aggregates' running state). Frames are only read during
//   `push`: a row kept past it is copied (the caller may read server sockets into reused buffers), once. avg columns
//   are merged from the shards' sum(x) and a hidden count(x) (average.ts); count/sum/avg(DISTINCT x) from the distinct
//   values the shards group by (distinct-aggregate.ts); string_agg/array_agg(… ORDER BY …) from ordered arrays
//   (ordered-aggregate.ts) — what those two hold is bounded per statement (held-bytes.ts, 54000 past it); HAVING is
//   applied to merged groups (having-filter.ts); hidden columns (`spec.hiddenCount`, after the client's) are dropped
//   from RowDescription and from every row sent, and avg columns are described with avg's result type.
// - CommandComplete: combined (command-tag.ts); SELECT reports the rows sent. EmptyQueryResponse: once. COPY TO
//   STDOUT: CopyData streams through, one CopyDone before the tag.
// - ErrorResponse from a shard: the statement failed. That shard's error goes out once, after the rows already sent,
//   with "(shard N)" appended to its Detail (added if absent), other fields byte for byte; later frames of the
//   statement are dropped, only their end is noted. The merger's own errors (shapes, tags, unsupported) end the
//   statement the same way.
// - PortalSuspended (Execute with a row limit) is not merged: with more than one shard, the first one seen fails the
//   statement with 0A000 (the shards' rows would exceed the limit and the portal cannot be resumed consistently).
//   A batch that never reaches an end frame (Describe without Execute) is the caller's to handle: `isDone` stays false.
import { Backend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/writer.js';
import { readDataRow, readRowDescription, type RowColumnType } from '../protocol/rows.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { withShardInDetail } from '../errors/shard-detail.js';
import { combineCommandTags, commandComplete, parseCommandTag, type CommandTag } from './command-tag.js';
import { averageType } from './average.js';
import { RowFolder, type MergedRow, type Row } from './group-fold.js';
import { AGGREGATE_VALUES_MAX_BYTES, HeldBytes } from './held-bytes.js';
import { havingPasses } from './having-filter.js';
import { groupKey, groupKeysFor, type ValueKey } from './group-key.js';
import { mergeSpecProblem, type MergeSpec, type SortKey } from './merge-spec.js';
import {
  comparatorFor,
  FIRST_USER_OID,
  isCollatedType,
  TypeOid,
  type ColumnType,
  type ValueComparator,
} from './value-compare.js';

function bodylessFrame(code: number): Buffer {
  const frame = Buffer.alloc(5);
  frame[0] = code;
  frame.writeInt32BE(4, 1);
  return frame;
}

const EMPTY_QUERY_RESPONSE = bodylessFrame(Backend.EmptyQueryResponse);
const PORTAL_SUSPENDED = bodylessFrame(Backend.PortalSuspended);
const COPY_DONE = bodylessFrame(Backend.CopyDone);
const BINARY_COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const EMPTY = Buffer.alloc(0);
/** Signature, flags (int32) and header extension length (int32); the extension itself follows. */
const BINARY_COPY_HEADER_FIXED = 19;
/** A CopyData holding the binary COPY file trailer (int16 -1). */
const COPY_TRAILER = Buffer.from([Backend.CopyData, 0, 0, 0, 6, 0xff, 0xff]);

type Mode = 'stream' | 'sort' | 'aggregate' | 'group';

interface QueuedRow {
  frame: Buffer;
  /** Values of the sort columns, in `orderBy` order (views into `frame`); null for SQL NULL. */
  keys: (Buffer | null)[];
}

/**
 * Flow control of the per-shard queues (ORDER BY merge; split INSERT … RETURNING in VALUES order): a queue holding
 * more than this many rows, or frame bytes, reports `isQueueFull` and its shard should not be read on until
 * `isQueueDrained` (half of both). Rows wait in a queue only while the merge waits for another shard's next row. One
 * 64 KiB read of narrow rows holds ~4,000 of them: a smaller row bound would pause and resume a shard on nearly every
 * read of a merge that is merely uneven. Held at most: ~4 MiB of frames plus ~150 bytes per row of objects, ×
 * shards, plus one read each past the bound.
 */
export const MERGE_QUEUE_MAX_ROWS = 10_000;
/** Text sort key values to put in the database's order (ORDER BY on text under a collation that is not bytes). */
export interface RankRequest {
  readonly values: readonly string[];
  /** A COLLATE clause's collation, or null: the database's default (then `columns` must not have their own). */
  readonly collation: string | null;
  /** Table columns the keys come from (table OID, column number). */
  readonly columns: readonly { readonly tableOid: number; readonly column: number }[];
}

/**
 * Rows an ORDER BY on collated text may hold while it waits for the database's order of its values (see `needsRanks`):
 * every shard's rows (LIMIT pushed down bounds them), at most this many bytes of frames.
 */
export const RANKED_SORT_MAX_BYTES = 64 * 1024 * 1024;
export const MERGE_QUEUE_MAX_BYTES = 4 * 1024 * 1024;

/** One shard's progress through the statement's reply. */
class ShardReply {
  isEnded = false;
  endType = 0;
  tag: CommandTag | null = null;
  headerCount = 0;
  /** CopyData frames seen from this shard (COPY TO: its first one may be a header). */
  copyDataCount = 0;
  aggregateRow: (Buffer | null)[] | null = null;
  private rows: (QueuedRow | undefined)[] = [];
  private head = 0;
  /** Bytes of the frames queued (flow control). */
  queuedBytes = 0;

  get queued(): number {
    return this.rows.length - this.head;
  }
  peek(): QueuedRow {
    return this.rows[this.head] as QueuedRow;
  }
  last(): QueuedRow | undefined {
    return this.queued > 0 ? this.rows[this.rows.length - 1] : undefined;
  }
  forEachQueued(visit: (row: QueuedRow) => void): void {
    for (let i = this.head; i < this.rows.length; i++) visit(this.rows[i] as QueuedRow);
  }
  enqueue(row: QueuedRow): void {
    this.rows.push(row);
    this.queuedBytes += row.frame.length;
  }
  dequeue(): QueuedRow {
    const row = this.rows[this.head] as QueuedRow;
    this.rows[this.head++] = undefined;
    this.queuedBytes -= row.frame.length;
    if (this.head === this.rows.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
    return row;
  }
  clear(): void {
    this.rows = [];
    this.head = 0;
    this.queuedBytes = 0;
  }
}

/** Binary min-heap of shard numbers, ordered by a comparator over shard numbers. */
class ShardHeap {
  private readonly items: number[] = [];

  constructor(private readonly compare: (a: number, b: number) => number) {}

  get size(): number {
    return this.items.length;
  }
  clear(): void {
    this.items.length = 0;
  }
  push(shard: number): void {
    const items = this.items;
    let i = items.length;
    items.push(shard);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[parent], shard) <= 0) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = shard;
  }
  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= items.length) break;
        if (child + 1 < items.length && this.compare(items[child + 1], items[child]) < 0) child++;
        if (this.compare(last, items[child]) <= 0) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

export class ReplyMerger {
  private readonly shards: ShardReply[];
  private readonly mode: Mode;
  /** Sort keys; columns counted from the end (hidden columns of `SELECT *`) are resolved at the first row. */
  private orderBy: readonly SortKey[];
  private maxKeyColumn: number;
  /** Scratch for `readSortKeys`: [start, length] of each column up to the last sort column. */
  private columnSpans: Int32Array;
  /** Trailing columns of the shards' rows the client never sees. */
  private readonly hiddenCount: number;
  /** Columns holding avg(x) (sum(x) on the shards). */
  private readonly avgColumns: ReadonlySet<number>;
  private readonly heap: ShardHeap;
  /** Type bytes of the replies before the rows, by position, as emitted. */
  private readonly headerTypes: number[] = [];
  /** The RowDescriptions among them, by position: each shard's must agree with the first one sent there. */
  private readonly headerShapes: ({ shape: ColumnType[]; shard: number } | undefined)[] = [];
  /**
   * The result's column types: from the Describe of the portal when there is one, else of the statement (formats all
   * text: they are only chosen at Bind).
   */
  private rowShape: ColumnType[] | null = null;
  private comparators: ValueComparator[] | null = null;
  private isFailed = false;
  /** Some shard is past its replies before the rows (sent a row or ended): no new kind of header may appear. */
  private hasProgressed = false;
  /** A RowDescription or DataRow was seen: SELECT's count is the rows sent. */
  private returnsRows = false;
  private hasCopyDone = false;
  /** COPY TO in binary format: one file header and one trailer for the client, not one per shard. */
  private isBinaryCopyOut = false;
  private isCopyHeaderSent = false;
  private isCopyTrailerHeld = false;
  private endedCount = 0;
  private rowsToSkip: number;
  private rowsSent = 0;
  /** DISTINCT ON: the key of the last row offered (copied: frames point into reused buffers). */
  private lastDistinctOnKey: (Buffer | null)[] | null = null;
  private distinctOnComparators: ValueComparator[] | null = null;
  /** GROUP BY mode: every group seen, by group key: its first row with its aggregates folded so far. */
  private readonly groups = new Map<string, MergedRow>();
  /** GROUP BY mode, once every shard has ended: the merged groups that pass HAVING, in no order yet. */
  private mergedGroups: Row[] | null = null;
  /** How aggregates fold (set at the first row, from the column types). */
  private folder: RowFolder | null = null;
  /** What DISTINCT values and ordered aggregates' elements hold, all groups together (bounded). */
  private readonly held: HeldBytes;
  /** GROUP BY mode: how each group column's values are keyed (set at the first row, from the column types). */
  private groupValueKeys: (ValueKey | null)[] | null = null;
  /** Next row of `spec.rowShards` to emit. */
  private nextOrderedRow = 0;
  /**
   * ORDER BY keys on text under a collation that does not sort by bytes (indices into the sort keys): compared by their
   * rank in the database's own order, which a shard gives once every shard's rows are in (`needsRanks`, `setRanks`).
   */
  private rankedKeys: number[] = [];
  /** GROUP BY mode: the ORDER BY comparators (set up before the ranks are asked for). */
  private groupComparators: ValueComparator[] | null = null;
  /** The collation the ranked keys are ordered in: a COLLATE clause's, or null for the database's (or column's). */
  private rankCollation: string | null = null;
  /** The table columns the ranked keys come from (their own collation must be the database's). */
  private readonly rankedColumns: { tableOid: number; column: number }[] = [];
  private ranks: Map<string, number> | null = null;
  private rankedBytes = 0;
  /** Sort mode: shards still running with no row waiting; the merge may only advance at 0. */
  private blockingCount: number;

  /** `aggregateValuesMaxBytes`: the bound of what DISTINCT values and ordered aggregates hold (tests lower it). */
  constructor(
    shardCount: number,
    private readonly spec: MergeSpec,
    private readonly emit: (frame: Buffer) => void,
    { aggregateValuesMaxBytes = AGGREGATE_VALUES_MAX_BYTES }: { aggregateValuesMaxBytes?: number } = {},
  ) {
    this.held = new HeldBytes(aggregateValuesMaxBytes);
    if (!Number.isInteger(shardCount) || shardCount < 1) {
      throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
    }
    const problem = mergeSpecProblem(spec);
    if (problem !== null) throw new RangeError(`bad merge spec: ${problem}`);
    this.shards = Array.from({ length: shardCount }, () => new ShardReply());
    this.mode =
      spec.groupBy !== undefined
        ? 'group'
        : spec.aggregates !== null
          ? 'aggregate'
          : spec.orderBy.length > 0
            ? 'sort'
            : 'stream';
    this.orderBy = spec.orderBy;
    this.maxKeyColumn = Math.max(-1, ...spec.orderBy.map((k) => k.column));
    this.columnSpans = new Int32Array(2 * (this.maxKeyColumn + 1));
    this.hiddenCount = spec.hiddenCount ?? 0;
    // avg merged from its sum and count (the shards run sum(x) there); avg(DISTINCT x) from values keeps avg's type.
    this.avgColumns = new Set(
      (spec.aggregates ?? []).filter((a) => a.countColumn !== undefined).map((a) => a.column),
    );
    this.heap = new ShardHeap(
      (a, b) => this.compareRows(this.shards[a].peek(), this.shards[b].peek()) || a - b,
    );
    this.rowsToSkip = spec.offset;
    this.blockingCount = shardCount;
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
   * GROUP BY, DISTINCT and aggregate modes keep what they need outside these queues (every group until the end):
   * never full.
   */
  isQueueFull(shard: number): boolean {
    if (this.isAwaitingRanks) return false; // every row is needed first (bounded by RANKED_SORT_MAX_BYTES)
    const reply = this.shards[shard];
    return reply.queued > MERGE_QUEUE_MAX_ROWS || reply.queuedBytes > MERGE_QUEUE_MAX_BYTES;
  }

  /** Flow control: `shard`'s queue is back to half the bounds of `isQueueFull` (or less): read it again. */
  isQueueDrained(shard: number): boolean {
    const reply = this.shards[shard];
    return reply.queued <= MERGE_QUEUE_MAX_ROWS / 2 && reply.queuedBytes <= MERGE_QUEUE_MAX_BYTES / 2;
  }

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
      this.fail(
        err instanceof PgError ? err : PgError.internal(`could not merge the shards' replies: ${why}`),
      );
    }
  }

  private dispatch(shard: number, reply: ShardReply, frame: Buffer): void {
    switch (frame[0]) {
      case Backend.DataRow:
        if (this.spec.isReplicated === true && shard !== 0) return; // the same rows exist on every shard
        this.onDataRow(shard, reply, frame);
        return;
      case Backend.CopyData:
        this.hasProgressed = true;
        if (!this.isFailed) this.onCopyData(shard, reply, frame);
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
          this.fail(
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
        this.hasCopyDone = true;
        return;
      default:
        this.onHeader(shard, reply, frame);
    }
  }

  /**
   * COPY TO data from several shards is one stream: in binary format each shard's stream has its own file header and
   * trailer — the first header is passed on, the trailer is sent once after every shard's rows; with HEADER (text,
   * CSV) each shard's first line is the same header, passed on once.
   */
  private onCopyData(shard: number, reply: ShardReply, frame: Buffer): void {
    const isFirstData = reply.copyDataCount++ === 0;
    if (this.isBinaryCopyOut) return this.onBinaryCopyData(isFirstData, frame);
    if (isFirstData && this.spec.copyOutHeader === true) {
      if (this.isCopyHeaderSent) return;
      this.isCopyHeaderSent = true;
    }
    this.emit(frame);
  }

  /**
   * PostgreSQL sends the binary file header in the same CopyData as the first row (or as the trailer, when it has no
   * rows), and the trailer (int16 -1) in a CopyData of its own after the last row.
   */
  private onBinaryCopyData(isFirstData: boolean, frame: Buffer): void {
    const body = frame.subarray(5);
    const hasHeader =
      isFirstData &&
      body.length >= BINARY_COPY_HEADER_FIXED &&
      body.subarray(0, BINARY_COPY_SIGNATURE.length).equals(BINARY_COPY_SIGNATURE);
    const headerLength = hasHeader ? BINARY_COPY_HEADER_FIXED + body.readInt32BE(15) : 0;
    const rest = body.subarray(headerLength);
    // Rows come one per CopyData: a rest of exactly int16 -1 is the trailer (a row's last bytes may be 0xffff too).
    const isTrailer = rest.length === 2 && rest.readInt16BE(0) === -1;
    if (isTrailer) this.isCopyTrailerHeld = true;
    const keepsHeader = hasHeader && !this.isCopyHeaderSent;
    if (hasHeader) this.isCopyHeaderSent = true;
    if (!isTrailer && (!hasHeader || keepsHeader)) return this.emit(frame);
    const out = Buffer.concat([
      keepsHeader ? body.subarray(0, headerLength) : EMPTY,
      isTrailer ? EMPTY : rest,
    ]);
    if (out.length === 0) return;
    const head = Buffer.allocUnsafe(5);
    head[0] = Backend.CopyData;
    head.writeInt32BE(4 + out.length, 1);
    this.emit(Buffer.concat([head, out]));
  }

  private onHeader(shard: number, reply: ShardReply, frame: Buffer): void {
    const index = reply.headerCount++;
    if (this.isFailed) return;
    const type = frame[0];
    if (index < this.headerTypes.length) {
      if (this.headerTypes[index] !== type) {
        this.fail(
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
      this.fail(differentReplies(`shard ${shard} sent '${charOf(type)}' after another shard's rows or end`));
      return;
    }
    this.headerTypes.push(type);
    if (type === Backend.CopyOutResponse) this.isBinaryCopyOut = frame[5] === 1;
    if (type === Backend.RowDescription) {
      const shape = readRowDescription(frame);
      this.headerShapes[index] = { shape, shard };
      // Right after a ParameterDescription: the statement's description, whose formats say nothing of Bind's.
      if (this.rowShape === null || this.headerTypes[index - 1] !== Backend.ParameterDescription)
        this.rowShape = shape;
      this.returnsRows = true;
      if (this.hiddenCount > 0) {
        this.emit(this.clientRowDescription(frame));
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
      this.fail(
        new PgError(
          'ERROR',
          SqlState.InternalError,
          'shards returned different row shapes',
          `shard ${firstShard}: ${describeShape(first)}; shard ${shard}: ${describeShape(shape)}`,
        ),
      );
    }
  }

  private onDataRow(shard: number, reply: ShardReply, frame: Buffer): void {
    this.hasProgressed = true;
    this.returnsRows = true;
    if (this.isFailed) return;
    switch (this.mode) {
      case 'stream':
        if (this.spec.rowShards !== undefined) {
          reply.enqueue({ frame: Buffer.from(frame), keys: [] });
          this.drainInRowOrder();
          return;
        }
        this.offer(frame);
        return;
      case 'group': {
        const values = readDataRow(frame); // views: copied below when the row starts a group
        const columns = this.spec.groupBy as readonly number[];
        // Equal as PostgreSQL's equality says (numeric 1.0 = 1.00, -0 = 0 …), not just by bytes (group-key.ts).
        this.groupValueKeys ??= groupKeysFor(
          this.columnTypes('GROUP BY'),
          columns,
          'GROUP BY / DISTINCT / UNION',
        );
        const key = groupKey(values, columns, this.groupValueKeys);
        const group = this.groups.get(key);
        if (group !== undefined) group.add(values, shard);
        else this.groups.set(key, this.rowFolder().start(readDataRow(Buffer.from(frame)), shard));
        return;
      }
      case 'aggregate':
        if (reply.aggregateRow !== null) {
          throw PgError.internal(
            `an aggregate query across shards returned more than one row on shard ${shard}`,
          );
        }
        reply.aggregateRow = readDataRow(Buffer.from(frame));
        return;
      case 'sort': {
        if (this.isLimitReached()) return;
        const row: QueuedRow = { frame, keys: this.readSortKeys(frame) };
        if (this.isAwaitingRanks) {
          this.rankedBytes += frame.length;
          if (this.rankedBytes > RANKED_SORT_MAX_BYTES) {
            throw new PgError(
              'ERROR',
              SqlState.ProgramLimitExceeded,
              `ORDER BY on text across shards in collation "${this.spec.textCollation ?? ''}" holds the rows in the proxy, and these exceed ${RANKED_SORT_MAX_BYTES >> 20} MiB`,
              undefined,
              'Add a LIMIT, sort with COLLATE "C" (byte order), or route the query to one shard.',
            );
          }
          reply.enqueue(row);
          retain(row);
          return;
        }
        if (reply.queued === 0) {
          reply.enqueue(row);
          this.heap.push(shard);
          this.blockingCount--;
        } else {
          reply.enqueue(row);
        }
        this.drain();
        if (reply.last() === row) retain(row);
      }
    }
  }

  /** Split INSERT … RETURNING: rows go out in the order of the original VALUES rows (`spec.rowShards`). */
  private drainInRowOrder(): void {
    const order = this.spec.rowShards as readonly number[];
    while (this.nextOrderedRow < order.length) {
      const reply = this.shards[order[this.nextOrderedRow]];
      if (reply === undefined || reply.queued === 0) return;
      this.offer(reply.dequeue().frame);
      this.nextOrderedRow++;
    }
  }

  private onEnd(shard: number, reply: ShardReply, type: number): void {
    reply.isEnded = true;
    reply.endType = type;
    this.endedCount++;
    this.hasProgressed = true;
    if (!this.isFailed && type !== Backend.ErrorResponse && reply.headerCount < this.headerTypes.length) {
      this.fail(
        differentReplies(
          `shard ${shard} ended after ${reply.headerCount} of ${this.headerTypes.length} replies`,
        ),
      );
    }
    if (this.mode === 'sort' && reply.queued === 0) {
      this.blockingCount--;
      this.drain();
    }
    if (this.endedCount === this.shards.length) this.finish();
  }

  private finish(): void {
    if (this.isFailed) return;
    const endType = this.shards[0].endType;
    if (this.shards.some((s) => s.endType !== endType)) {
      const ends = this.shards.map((s, i) => `shard ${i}: '${charOf(s.endType)}'`).join(', ');
      this.fail(differentReplies(`the statement ended differently (${ends})`));
      return;
    }
    if (this.isAwaitingRanks) return; // setRanks merges the rows and ends the reply
    if (this.mode === 'sort') this.drain(); // every shard ended: nothing blocks (already drained; kept as a guard)
    if (this.mode === 'aggregate') this.emitAggregate();
    if (this.mode === 'group') {
      this.mergedGroups ??= this.mergeGroups();
      // Groups ordered by text in a collation that is not bytes: a shard ranks their values first (setRanks).
      if (this.groupComparators === null && this.orderBy.length > 0 && this.mergedGroups.length > 1) {
        this.groupComparators = this.sortComparators(this.mergedTypes(this.columnTypes('GROUP BY')), true);
      }
      if (this.isAwaitingRanks) return;
      this.emitGroups(this.mergedGroups);
    }
    if (this.isCopyTrailerHeld) this.emit(COPY_TRAILER);
    if (this.hasCopyDone) this.emit(COPY_DONE);
    switch (endType) {
      case Backend.CommandComplete: {
        const tags = this.shards.map((s) => s.tag as CommandTag);
        const tag =
          this.spec.isReplicated === true
            ? tags.every((t) => t.text === tags[0].text)
              ? tags[0].text
              : null
            : combineCommandTags(tags, this.returnsRows ? this.rowsSent : null);
        if (tag === null) {
          const detail = tags.map((t, i) => `shard ${i}: ${t.text}`).join(', ');
          this.fail(
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

  // ---- rows ----

  /** One row of the merged stream (a shard's DataRow): OFFSET skips it, LIMIT drops it, else it goes to the client. */
  private offer(frame: Buffer): void {
    if (this.spec.distinctOn !== undefined && this.isSameDistinctOnKey(frame)) return;
    if (!this.takeRow()) return;
    this.emit(this.hiddenCount > 0 ? withoutTrailingColumns(frame, this.hiddenCount) : frame);
  }

  /** DISTINCT ON: is this row's key the one of the row before it (then it is not the first of its group)? */
  private isSameDistinctOnKey(frame: Buffer): boolean {
    const columns = this.spec.distinctOn as readonly number[];
    const row = readDataRow(frame);
    // Copies: frames point into buffers that are reused once the row is passed on.
    const values = columns.map((c) => (row[c] == null ? null : Buffer.from(row[c] as Buffer)));
    const previous = this.lastDistinctOnKey;
    this.lastDistinctOnKey = values;
    if (previous === null) return false;
    // Equal as PostgreSQL compares them (numeric 1.0 = 1.00), not just by bytes.
    if (this.distinctOnComparators === null) {
      const types = this.columnTypes('DISTINCT ON');
      this.distinctOnComparators = columns.map((c) => comparatorFor(columnType(types, c)));
    }
    for (let i = 0; i < values.length; i++) {
      const a = values[i];
      const b = previous[i];
      if (a === null || b === null ? a !== b : this.distinctOnComparators[i](a, b) !== 0) return false;
    }
    return true;
  }

  /** `offer` for a row the merge built (values of every column, hidden ones included). */
  private offerValues(values: readonly (Buffer | null)[]): void {
    if (!this.takeRow()) return;
    this.emit(dataRow(this.hiddenCount > 0 ? values.slice(0, values.length - this.hiddenCount) : values));
  }

  /** OFFSET skips the next merged row, LIMIT drops it; else it is counted as sent. */
  private takeRow(): boolean {
    if (this.rowsToSkip > 0) {
      this.rowsToSkip--;
      return false;
    }
    if (this.isLimitReached()) return false;
    this.rowsSent++;
    return true;
  }

  private isLimitReached(): boolean {
    return this.spec.limit !== null && this.rowsSent >= this.spec.limit;
  }

  /** Sort mode: emit head rows while every running shard has one waiting. */
  private drain(): void {
    if (this.isAwaitingRanks) return;
    while (this.blockingCount === 0 && this.heap.size > 0 && !this.isFailed) {
      const shard = this.heap.pop();
      const reply = this.shards[shard];
      const row = reply.dequeue();
      if (reply.queued > 0) this.heap.push(shard);
      else if (!reply.isEnded) this.blockingCount++;
      this.offer(row.frame);
      if (this.isLimitReached()) {
        this.dropQueuedRows();
        return;
      }
    }
  }

  private dropQueuedRows(): void {
    for (const reply of this.shards) {
      if (reply.queued === 0) continue;
      reply.clear();
      if (!reply.isEnded) this.blockingCount++;
    }
    this.heap.clear();
  }

  private compareRows(a: QueuedRow, b: QueuedRow): number {
    return compareSortKeys(this.orderBy, this.comparators as ValueComparator[], a.keys, b.keys);
  }

  /**
   * A comparator per ORDER BY key for these column types. Text under a non-byte collation: by rank in the database's
   * order (`isRankable`: sort mode, where every row can wait for the ranks), else refused.
   */
  private sortComparators(types: readonly RowColumnType[], isRankable = false): ValueComparator[] {
    return this.orderBy.map((k, i) => {
      const type = columnType(types, k.column);
      const tableOid = type.tableOid ?? 0;
      const collation = k.collation ?? null;
      // Ranked: a table column (its own collation is checked by the rank query) or a key with a COLLATE clause. An
      // expression's collation comes from the columns in it, which the proxy cannot see: refused (add a COLLATE).
      const isRankableKey = isRankable && (tableOid !== 0 || collation !== null);
      if (isRankableKey && this.needsCollationOrder(type, k.isByteCollated === true)) {
        if (this.rankedKeys.length > 0 && collation !== this.rankCollation) {
          throw PgError.featureNotSupported(
            'ORDER BY text keys in different collations across shards is not supported',
            'Sort every text key in one collation, or route the query to one shard.',
          );
        }
        this.rankedKeys.push(i);
        this.rankCollation = collation;
        if (collation === null) {
          this.rankedColumns.push({ tableOid, column: type.column ?? 0 });
        }
        return (a, b) => this.rankOf(a) - this.rankOf(b);
      }
      this.checkCollation(type, k.isByteCollated === true, 'ORDER BY');
      return comparatorFor(type);
    });
  }

  private rankOf(value: Buffer): number {
    const rank = (this.ranks as Map<string, number>).get(value.toString('utf8'));
    if (rank === undefined) throw PgError.internal('a text sort key has no rank in the database order');
    return rank;
  }

  /**
   * Every shard's rows are in, and their order needs the database's collation for text keys: the caller asks a shard
   * to order `rankValues()` and hands the order back with `setRanks` (the merge and its end wait until then).
   */
  get needsRanks(): boolean {
    return this.rankedKeys.length > 0 && this.ranks === null && !this.isFailed && this.isDone;
  }

  /** What to order: the distinct text key values held, in which collation, from which table columns. */
  rankRequest(): RankRequest {
    return { values: this.rankValues(), collation: this.rankCollation, columns: this.rankedColumns };
  }

  /** The distinct values of the text sort keys in the rows held, to be put in the database's order. */
  private rankValues(): string[] {
    const values = new Set<string>();
    if (this.mode === 'group') {
      const columns = this.rankedKeys.map((k) => this.orderBy[k].column);
      for (const row of this.mergedGroups ?? []) {
        for (const c of columns) {
          const v = row[c];
          if (v != null) values.add(v.toString('utf8'));
        }
      }
      return [...values];
    }
    for (const reply of this.shards) {
      reply.forEachQueued((row) => {
        for (const k of this.rankedKeys) {
          const v = row.keys[k];
          if (v !== null) values.add(v.toString('utf8'));
        }
      });
    }
    return [...values];
  }

  /** The database's order of `rankValues()` (value → position): the merge runs now, then the reply ends. */
  setRanks(ranks: Map<string, number>): void {
    if (this.isFailed) return;
    this.ranks = ranks;
    this.blockingCount = 0; // every shard has ended
    try {
      for (let shard = 0; shard < this.shards.length; shard++) {
        if (this.shards[shard].queued > 0) this.heap.push(shard);
      }
      this.drain();
      this.finish();
    } catch (err) {
      this.fail(err instanceof PgError ? err : PgError.internal(String(err)));
    }
  }

  /** Rank mode: rows wait (all of them) for the database's order of their text keys. */
  private get isAwaitingRanks(): boolean {
    return this.rankedKeys.length > 0 && this.ranks === null;
  }

  private readSortKeys(frame: Buffer): (Buffer | null)[] {
    const columnCount = frame.readInt16BE(5);
    if (this.comparators === null) {
      if (this.orderBy.some((k) => k.column < 0)) this.resolveKeysFromEnd(columnCount);
      this.comparators = this.sortComparators(this.columnTypes('ORDER BY'), this.mode === 'sort');
    }
    if (columnCount <= this.maxKeyColumn) {
      throw PgError.internal(
        `ORDER BY column ${this.maxKeyColumn + 1} is beyond the ${columnCount} columns of the row`,
      );
    }
    const spans = this.columnSpans;
    let pos = 7;
    for (let c = 0; c <= this.maxKeyColumn; c++) {
      const length = frame.readInt32BE(pos);
      pos += 4;
      spans[2 * c] = pos;
      spans[2 * c + 1] = length;
      if (length > 0) pos += length;
    }
    const keys = new Array<Buffer | null>(this.orderBy.length);
    for (let i = 0; i < keys.length; i++) {
      const c = this.orderBy[i].column;
      const length = spans[2 * c + 1];
      keys[i] = length < 0 ? null : frame.subarray(spans[2 * c], spans[2 * c] + length);
    }
    return keys;
  }

  /** Sort keys on hidden columns of a `SELECT *` count from the end of the row: number them now that rows show its width. */
  private resolveKeysFromEnd(columnCount: number): void {
    this.orderBy = this.orderBy.map((k) => (k.column < 0 ? { ...k, column: columnCount + k.column } : k));
    this.maxKeyColumn = Math.max(-1, ...this.orderBy.map((k) => k.column));
    this.columnSpans = new Int32Array(2 * (this.maxKeyColumn + 1));
  }

  /** Text under a collation other than byte order: the proxy cannot compare it by itself. */
  private needsCollationOrder(type: ColumnType, isByteCollated: boolean): boolean {
    const collation = this.spec.textCollation;
    return collation !== undefined && collation !== null && !isByteCollated && isCollatedType(type);
  }

  /** Text under a collation other than byte order cannot be min/max'ed (or group-ordered) here exactly: refuse. */
  private checkCollation(type: ColumnType, isByteCollated: boolean, purpose: string): void {
    if (!this.needsCollationOrder(type, isByteCollated)) return;
    const collation = this.spec.textCollation as string;
    throw PgError.featureNotSupported(
      `${purpose} on text across shards would need the database collation "${collation}", which shardgate cannot reproduce here`,
      'Add COLLATE "default" (the database order) or COLLATE "C" (byte order) to the expression, sort on a table column, or route the query to one shard.',
    );
  }

  private columnTypes(purpose: string): readonly ColumnType[] {
    const types = this.spec.columnTypes ?? this.rowShape;
    if (types === null) {
      throw PgError.featureNotSupported(
        `${purpose} across shards needs the result's column types, and this reply has no row description`,
        "Describe the portal before Execute (or let shardgate know the statement's result types).",
      );
    }
    return types;
  }

  /** How aggregates fold for these rows (set up at the first row: 0A000 now for what cannot be merged). */
  private rowFolder(): RowFolder {
    if (this.folder !== null) return this.folder;
    const aggregates = this.spec.aggregates ?? [];
    const types =
      aggregates.length > 0 || this.spec.isGrandTotal === true ? this.columnTypes('an aggregate') : [];
    for (const { column, fn } of aggregates) {
      if (fn === 'min' || fn === 'max') this.checkCollation(columnType(types, column), false, `${fn}()`);
    }
    this.folder = new RowFolder(aggregates, types, this.spec.textCollation ?? null, this.held);
    return this.folder;
  }

  /** GROUP BY: the groups merged from every shard's partial ones, HAVING applied (a grand total's one row if none). */
  private mergeGroups(): Row[] {
    const out: Row[] = [];
    for (const group of this.groups.values()) out.push(group.result());
    this.groups.clear();
    if (out.length === 0 && this.spec.isGrandTotal === true) out.push(this.rowFolder().emptyRow());
    const having = this.spec.having;
    if (having === undefined || out.length === 0) return out;
    const merged = this.mergedTypes(this.columnTypes('HAVING'));
    const collation = this.spec.textCollation ?? null;
    return out.filter((row) => havingPasses(having, row, merged, collation));
  }

  /** GROUP BY: the merged groups in ORDER BY order, then OFFSET and LIMIT. */
  private emitGroups(rows: readonly Row[]): void {
    if (this.orderBy.length > 0 && rows.length > 1) {
      const merged = this.mergedTypes(this.columnTypes('GROUP BY'));
      const comparators = this.groupComparators ?? this.sortComparators(merged);
      const keyed = rows.map((row) => ({ row, keys: this.orderBy.map((k) => row[k.column]) }));
      keyed.sort((a, b) => compareSortKeys(this.orderBy, comparators, a.keys, b.keys));
      for (const { row } of keyed) this.offerValues(row);
      return;
    }
    for (const row of rows) this.offerValues(row);
  }

  /** Every shard's one aggregate row combined into one: the first row's values, aggregates merged. */
  private combineRows(rows: readonly Row[]): Row {
    const folder = this.rowFolder();
    const merged = folder.start(rows[0], 0);
    for (let i = 1; i < rows.length; i++) merged.add(rows[i], i);
    return merged.result();
  }

  /** The merged rows' column types: an avg column has avg's result type, not its sum's. */
  private mergedTypes(types: readonly ColumnType[]): readonly ColumnType[] {
    if (this.avgColumns.size === 0) return types;
    return types.map((t, i) =>
      this.avgColumns.has(i) ? { typeOid: averageType(t.typeOid), format: t.format } : t,
    );
  }

  /**
   * The RowDescription the client gets: hidden columns dropped, avg columns (sum(x) on the shards) described as
   * avg's result type — numeric, or float8 for float8 input.
   */
  private clientRowDescription(frame: Buffer): Buffer {
    const count = frame.readInt16BE(5);
    const keep = count - this.hiddenCount;
    if (keep < 0)
      throw PgError.internal(
        `the shards returned ${count} columns, fewer than the ${this.hiddenCount} hidden ones`,
      );
    const out = Buffer.from(frame);
    let pos = 7;
    for (let i = 0; i < keep; i++) {
      pos = out.indexOf(0, pos) + 1; // field name
      if (this.avgColumns.has(i)) {
        const oid = averageType(out.readUInt32BE(pos + 6));
        out.writeUInt32BE(oid, pos + 6);
        out.writeInt16BE(oid === TypeOid.float8 ? 8 : -1, pos + 10); // type size
        out.writeInt32BE(-1, pos + 12); // type modifier
      }
      pos += 18;
    }
    out.writeInt32BE(pos - 1, 1);
    out.writeInt16BE(keep, 5);
    return out.subarray(0, pos);
  }

  private emitAggregate(): void {
    const aggregates = this.spec.aggregates ?? [];
    const rows = this.shards.flatMap((s) => (s.aggregateRow === null ? [] : [s.aggregateRow]));
    if (rows.length === 0) return;
    const width = rows[0].length;
    if (rows.some((r) => r.length !== width))
      throw PgError.internal('shards returned aggregate rows of different widths');
    const types = aggregates.length > 0 ? this.columnTypes('an aggregate') : [];
    for (const { column, countColumn } of aggregates) {
      if (Math.max(column, countColumn ?? 0) >= width)
        throw PgError.internal(`aggregate column ${column + 1} is beyond the ${width} columns of the row`);
    }
    const out = this.combineRows(rows);
    const having = this.spec.having;
    const collation = this.spec.textCollation ?? null;
    if (having !== undefined && !havingPasses(having, out, this.mergedTypes(types), collation)) return;
    this.offerValues(out);
  }

  // ---- failure ----

  /** The request failed in the proxy itself (e.g. a COPY row it cannot route): `err` is the one error emitted. */
  abort(err: PgError): void {
    this.fail(err);
  }

  private fail(err: PgError): void {
    if (this.isFailed) return;
    this.markFailed();
    this.emit(err.toBuffer());
  }

  private markFailed(): void {
    this.isFailed = true;
    this.dropQueuedRows();
    for (const reply of this.shards) reply.aggregateRow = null;
    this.groups.clear(); // what a failed statement held (DISTINCT values…) is not needed any more
  }
}

/** A queued row outlives `push`: give it its own copy of the frame (keys re-pointed into the copy). */
function retain(row: QueuedRow): void {
  const copy = Buffer.from(row.frame);
  const base = row.frame.byteOffset;
  for (let i = 0; i < row.keys.length; i++) {
    const key = row.keys[i];
    if (key !== null) row.keys[i] = copy.subarray(key.byteOffset - base, key.byteOffset - base + key.length);
  }
  row.frame = copy;
}

function columnType<T extends ColumnType>(types: readonly T[], column: number): T {
  const type = types[column];
  if (type === undefined)
    throw PgError.internal(`column ${column + 1} is beyond the ${types.length} described columns`);
  return type;
}

function describeShape(shape: readonly ColumnType[]): string {
  const columns = shape.map((c) => (c.format === 0 ? `${c.typeOid}` : `${c.typeOid}/binary`));
  return `${shape.length} columns (type OIDs ${columns.join(', ')})`;
}

/** A DataRow without its last `count` columns (a copy). */
function withoutTrailingColumns(frame: Buffer, count: number): Buffer {
  const columns = frame.readInt16BE(5);
  const keep = columns - count;
  if (keep < 0) throw PgError.internal(`a row of ${columns} columns lacks the ${count} hidden ones`);
  let pos = 7;
  for (let i = 0; i < keep; i++) {
    const length = frame.readInt32BE(pos);
    pos += 4;
    if (length > 0) pos += length;
  }
  const out = Buffer.allocUnsafe(pos);
  frame.copy(out, 0, 0, pos);
  out.writeInt32BE(pos - 1, 1);
  out.writeInt16BE(keep, 5);
  return out;
}

function dataRow(values: readonly (Buffer | null)[]): Buffer {
  const w = new MessageWriter(64);
  w.int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.frame(Backend.DataRow);
}

function differentReplies(detail: string): PgError {
  return new PgError('ERROR', SqlState.InternalError, 'shards returned different replies', detail);
}

function charOf(type: number): string {
  return String.fromCharCode(type);
}

/** Two rows' ORDER BY key values (`keys[i]` for `orderBy[i]`): NULLS FIRST/LAST and DESC as the keys say. */
function compareSortKeys(
  orderBy: readonly SortKey[],
  comparators: readonly ValueComparator[],
  a: readonly (Buffer | null)[],
  b: readonly (Buffer | null)[],
): number {
  for (let i = 0; i < comparators.length; i++) {
    const x = a[i];
    const y = b[i];
    const key = orderBy[i];
    if (x === null || y === null) {
      if (x === y) continue;
      return (x === null) === key.isNullsFirst ? -1 : 1;
    }
    const c = comparators[i](x, y);
    if (c !== 0) return key.isDescending ? -c : c;
  }
  return 0;
}

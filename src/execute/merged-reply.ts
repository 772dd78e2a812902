// The bookkeeping every merged reply shares, whatever its row strategy (row-merge.ts): backend frames of one statement
// run on N shards in (each tagged with its shard, up to and including the frame that ends the statement there), the
// client's frames out through `emit`.
//
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
import { Backend } from '../protocol/codes.js';
import { readRowDescription } from '../protocol/rows.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { withShardInDetail } from '../errors/shard-detail.js';
import { combineCommandTags, commandComplete, parseCommandTag, type CommandTag } from './command-tag.js';
import { CopyOutMerge } from './copy-out-merge.js';
import type { MergeSpec } from './merge-spec.js';
import type { ResultColumns } from './result-columns.js';
import type { RowMerge } from './row-merge.js';
import type { RowOutput } from './row-output.js';
import { FIRST_USER_OID, type ColumnType } from './value-compare.js';

const EMPTY_QUERY_RESPONSE = Buffer.from([Backend.EmptyQueryResponse, 0, 0, 0, 4]);
const PORTAL_SUSPENDED = Buffer.from([Backend.PortalSuspended, 0, 0, 0, 4]);

/** One shard's progress through the statement's reply. */
class ShardProgress {
  isEnded = false;
  endType = 0;
  tag: CommandTag | null = null;
  headerCount = 0;
}

export class MergedReply {
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

  constructor(
    shardCount: number,
    private readonly spec: MergeSpec,
    private readonly emit: (frame: Buffer) => void,
    private readonly columns: ResultColumns,
    private readonly output: RowOutput,
    private readonly rows: RowMerge,
  ) {
    this.shards = Array.from({ length: shardCount }, () => new ShardProgress());
  }

  /** Every shard has ended the statement (the merged reply is complete). */
  get isDone(): boolean {
    return this.endedCount === this.shards.length;
  }

  /** The statement failed: an error (a shard's or the merger's) was emitted. */
  get hasFailed(): boolean {
    return this.isFailed;
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

  /** The ranks the row strategy waited for: its rows are merged now, then the reply ends. */
  finishWithRanks(ranks: Map<string, number>): void {
    if (this.isFailed) return;
    try {
      this.rows.setRanks(ranks);
      this.finish();
    } catch (err) {
      this.fail(err instanceof PgError ? err : PgError.internal(String(err)));
    }
  }

  /** The statement failed: `err` is the one error the client gets (none if one was already emitted). */
  fail(err: PgError): void {
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

  private onEnd(shard: number, reply: ShardProgress, type: number): void {
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
    this.rows.onShardEnd(shard);
    if (this.endedCount === this.shards.length) this.finish();
  }

  /** Every shard has ended: what the strategy held, COPY's end, then the one end frame (unless rows await ranks). */
  private finish(): void {
    if (this.isFailed) return;
    const endType = this.shards[0].endType;
    if (this.shards.some((s) => s.endType !== endType)) {
      const ends = this.shards.map((s, i) => `shard ${i}: '${charOf(s.endType)}'`).join(', ');
      this.fail(differentReplies(`the statement ended differently (${ends})`));
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

// INSERT … SELECT evaluated by the proxy, streamed (issue 12): when the query's rows need no merge across shards (no
// ORDER BY, LIMIT, aggregates, DISTINCT: each shard's rows are simply concatenated), the query is declared as a cursor
// on each shard it reads — all at once, before any row is written, so every cursor sees the data as it was before the
// statement — and its rows are fetched one batch at a time from one shard after another; each batch is written into
// the INSERT as a VALUES list and routed like any multi-row INSERT (split by shard, sequence values filled, ON
// CONFLICT, RETURNING) before the next is fetched. The proxy holds at most one batch of rows; the client's socket
// paces the RETURNING rows (backpressure). Everything runs in one transaction — the client's, or one of the proxy's
// own around the statement (two-phase when on) — so an error in any batch undoes every batch on every shard. The
// client sees one statement: the first batch's replies (ParseComplete, BindComplete, descriptions), every batch's
// RETURNING rows, one command tag `INSERT 0 n`.
import { Buffer } from 'node:buffer';
import { Backend, Frontend } from '../protocol/codes.js';
import { commandComplete, query, SYNC } from '../protocol/messages.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { MessageWriter } from '../protocol/writer.js';
import { readDataRow, readRowDescription } from '../protocol/rows.js';
import { decodeBind, encodeBind, encodeParse } from '../protocol/bind.js';
import type { MergeSpec } from '../execute/merge-spec.js';
import { insertWithRows, valueLiteral, type InsertSelectParts } from '../router/insert-select.js';
import { RelayingOwner, type FanoutOwner, type SessionRelay } from './fanout.js';
import { paramTypesFor } from './insert-source.js';
import {
  withStatementText,
  type RequestStatement,
  type RewrittenRequest,
} from '../frontend/request-rewrite.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import {
  batchSplitter,
  describesStatement,
  splitBatch,
  type BatchSplitter,
  type SplitRouting,
} from './insert-batch-split.js';

/** The cursor the query runs in on each shard (closed once read to the end; one INSERT … SELECT at a time). */
export const INSERT_SOURCE_CURSOR = 'shardgate_insert_source';

/** The largest number of bytes of rows (as SQL literals) one streamed INSERT … SELECT held at once, process-wide. */
export const insertStreamMemory = { peakBytes: 0 };

/** Where the replies of a streamed INSERT … SELECT go on to: the session, which also takes its RETURNING rows. */
export type InsertStreamSession = SessionRelay & Pick<FanoutOwner, 'writeToClient' | 'onClientDrain'>;

/** Where a streamed INSERT … SELECT reports: the INSERT … SELECT run that runs its steps. */
export interface InsertStreamOwner {
  /** Run a request of the proxy's own on `shards` (not routed: the cursor's DECLARE / FETCH / CLOSE). */
  runInsertStreamStep(shards: readonly number[], types: number[], frames: Buffer[]): void;
  /** Route and run a batch's INSERT as the next request. */
  routeInsertStreamBatch(request: RewrittenRequest): void;
  /** Run a batch already split by shard (insert-batch-split.ts); `request` stands for it in the queue. */
  runInsertStreamSplit(
    target: Extract<BatchTarget, { kind: 'split' }>,
    request: { types: number[]; frames: Buffer[] },
  ): void;
  /** The session's routing, for splitting batches without routing them whole. */
  readonly routing: SplitRouting;
  /** A step's fan-out has answered (the dispatch ends the request in flight before the next step). */
  onInsertStreamStepDone(): void;
  /** The statement has ended; `tag` is its command tag (null: it failed, its error already sent). */
  onInsertStreamDone(sawError: boolean, tag: Buffer | null): void;
}

/**
 * Whether an INSERT's query routed to `target` can be streamed: one shard, or several whose rows are concatenated
 * as they come (nothing merged, the shards run the client's text unchanged).
 */
export function isStreamableSource(
  target: { kind: 'one' } | { kind: 'many'; spec: MergeSpec } | { kind: 'split' } | { kind: 'copyIn' },
): boolean {
  if (target.kind === 'one') return true;
  if (target.kind !== 'many') return false;
  const s = target.spec;
  return (
    s.orderBy.length === 0 &&
    s.limit === null &&
    s.offset === 0 &&
    s.aggregates === null &&
    s.isReplicated !== true &&
    s.isBroadcast !== true &&
    s.distinctOn === undefined &&
    s.groupBy === undefined &&
    (s.hiddenCount ?? 0) === 0 &&
    s.having === undefined &&
    s.isGrandTotal !== true &&
    s.copyOutHeader !== true
  );
}

/**
 * DECLARE of the cursor over the INSERT's query: a simple Query, or (extended protocol) an unnamed Parse + Bind with
 * the client's parameters, Execute and Sync — a cursor's query takes parameters as the statement would.
 */
export function declareRequest(
  statement: RequestStatement,
  parts: InsertSelectParts,
  clientFrames: readonly Buffer[],
): { types: number[]; frames: Buffer[] } {
  const sql = `DECLARE ${INSERT_SOURCE_CURSOR} NO SCROLL CURSOR FOR ${parts.source}`;
  if (statement.isQuery) return { types: [Frontend.Query], frames: [query(sql)] };
  const bind = decodeBind(clientFrames[statement.bindIndex]);
  const parseMap = Array.from({ length: statement.paramCount }, (_, i) => i + 1);
  const bindMap = Array.from({ length: bind.values.length }, (_, i) => i + 1);
  const types = paramTypesFor(statement, parts.sourceParams, bind.formats);
  return {
    types: [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync],
    frames: [
      encodeParse(sql, types, parseMap),
      encodeBind({ ...bind, portal: '', resultFormats: Buffer.from([0, 0]) }, bindMap),
      new MessageWriter(8).cstring('').int32(0).frame(Frontend.Execute),
      SYNC,
    ],
  };
}

type Phase = 'declare' | 'fetch' | 'insert' | 'close';

/** Replies of a batch after the first that the client already had from the first (its requests' own replies). */
function isRepeatedReply(type: number): boolean {
  return (
    type === Backend.ParseComplete ||
    type === Backend.BindComplete ||
    type === Backend.ParameterDescription ||
    type === Backend.RowDescription ||
    type === Backend.NoData ||
    type === Backend.NoticeResponse
  );
}

/** One streamed INSERT … SELECT: the FanoutOwner of each of its steps, which it chains until the end. */
export class InsertStreamRun extends RelayingOwner<InsertStreamSession> {
  /** The client's own request (the shards run the proxy's steps instead). */
  readonly clientTypes: readonly number[];
  readonly clientFrames: readonly Buffer[];
  private readonly owner: InsertStreamOwner;
  private readonly statement: RequestStatement;
  private readonly parts: InsertSelectParts;
  private readonly batchRows: number;
  private readonly reader = new FrameReader(1 << 30);
  private shards: readonly number[] = [];
  private phase: Phase = 'declare';
  /** The source shard being read (index into `shards`). */
  private shardIndex = 0;
  private typeOids: number[] = [];
  private columns = 0;
  /** The rows fetched and not written yet (at most one FETCH: `batchRows`). */
  private rows: string[] = [];
  private rowBytes = 0;
  /** How batches are split by shard without routing them whole; null: each batch is routed as an INSERT. */
  private splitter: BatchSplitter | null = null;
  /** The key value of each row in `rows` (with a splitter), and whether one was NULL (then routed whole). */
  private keys: string[] = [];
  private hasNullKey = false;
  /** The last FETCH returned fewer rows than asked: its shard's cursor is read to the end. */
  private isShardDone = false;
  private batchesWritten = 0;
  /** Rows the INSERTs reported (ON CONFLICT DO NOTHING may write fewer than were fetched). */
  private inserted = 0;
  private hasFailed = false;
  /** Frames of the current chunk passed on to the client. */
  private out: Buffer[] = [];

  /**
   * `owner` runs its steps and is told of their ends; the servers' other events, and the RETURNING rows, go to
   * `session` (RelayingOwner).
   */
  constructor(
    owner: InsertStreamOwner,
    session: InsertStreamSession,
    client: { types: readonly number[]; frames: readonly Buffer[] },
    statement: RequestStatement,
    parts: InsertSelectParts,
    batchRows: number,
  ) {
    super(session);
    this.owner = owner;
    this.clientTypes = client.types;
    this.clientFrames = client.frames;
    this.statement = statement;
    this.parts = parts;
    this.batchRows = batchRows;
  }

  /** Declare the cursor on every shard the query reads (all before any row is written), then read them in turn. */
  start(shards: readonly number[]): void {
    this.shards = shards;
    this.phase = 'declare';
    const { types, frames } = declareRequest(this.statement, this.parts, this.clientFrames);
    this.owner.runInsertStreamStep(shards, types, frames);
  }

  // --- FanoutOwner: the replies of each step -------------------------------------------------------------------

  writeToClient(buf: Buffer): boolean {
    this.out = [];
    this.reader.push(buf, (type, frame) => this.onFrame(type, frame));
    if (this.out.length === 0) return true;
    const out = this.out;
    this.out = [];
    return this.session.writeToClient(out.length === 1 ? out[0] : Buffer.concat(out));
  }

  private onFrame(type: number, frame: Buffer): void {
    if (type === Backend.ErrorResponse) {
      // The first error is the statement's (later shards' errors of the same step are not sent).
      if (!this.hasFailed) this.out.push(Buffer.from(frame));
      this.hasFailed = true;
      return;
    }
    if (this.hasFailed) return;
    if (this.phase === 'fetch') return this.onFetched(type, frame);
    if (this.phase !== 'insert') return; // DECLARE / CLOSE: only their errors matter
    if (type === Backend.CommandComplete) {
      const tag = frame.toString('utf8', 5, frame.length - 1);
      this.inserted += Number(/(\d+)$/.exec(tag)?.[1] ?? 0);
      return;
    }
    // The first batch answers the client's request (its Parse, Bind, Describe); later ones add RETURNING rows only.
    if (this.batchesWritten > 0 && isRepeatedReply(type)) return;
    this.out.push(frame);
  }

  private onFetched(type: number, frame: Buffer): void {
    if (type === Backend.RowDescription) {
      const columns = readRowDescription(frame);
      this.typeOids = columns.map((c) => c.typeOid);
      this.columns = columns.length;
      this.splitter ??= batchSplitter(this.owner.routing, this.parts, this.statement, this.typeOids);
    } else if (type === Backend.DataRow) {
      const values = readDataRow(frame);
      this.columns = values.length;
      if (this.splitter !== null) {
        const key = values[this.splitter.keyIndex] ?? null;
        if (key === null) this.hasNullKey = true;
        else this.keys.push(key.toString('utf8'));
      }
      const row = `(${values.map((v, i) => valueLiteral(v === null ? null : v.toString('utf8'), this.typeOids[i] ?? 0)).join(', ')})`;
      this.rows.push(row);
      this.rowBytes += row.length;
      if (this.rowBytes > insertStreamMemory.peakBytes) insertStreamMemory.peakBytes = this.rowBytes;
    }
  }

  onClientDrain(resume: () => void): void {
    this.session.onClientDrain(resume);
  }

  /** A step has answered: the next one (fetch → insert → fetch … → close → next shard … → the tag). */
  onFanoutDone(): void {
    this.owner.onInsertStreamStepDone();
    if (this.hasFailed) return this.owner.onInsertStreamDone(true, null);
    switch (this.phase) {
      case 'declare':
        return this.fetch();
      case 'fetch':
        this.isShardDone = this.rows.length < this.batchRows;
        if (this.rows.length > 0) return this.writeBatch();
        return this.afterBatch();
      case 'insert':
        this.batchesWritten++;
        return this.afterBatch();
      case 'close':
        this.shardIndex++;
        if (this.shardIndex < this.shards.length) return this.fetch();
        // A query with no rows still answers as an INSERT (INSERT 0 0, RETURNING described): one empty batch.
        if (this.batchesWritten === 0) return this.writeBatch();
        return this.owner.onInsertStreamDone(false, commandComplete(`INSERT 0 ${this.inserted}`));
    }
  }

  private fetch(): void {
    this.phase = 'fetch';
    this.isShardDone = false;
    const sql = `FETCH FORWARD ${this.batchRows} FROM ${INSERT_SOURCE_CURSOR}`;
    this.owner.runInsertStreamStep([this.shards[this.shardIndex]], [Frontend.Query], [query(sql)]);
  }

  private afterBatch(): void {
    if (this.shardIndex >= this.shards.length) {
      // The empty batch of a query with no rows.
      return this.owner.onInsertStreamDone(false, commandComplete(`INSERT 0 ${this.inserted}`));
    }
    if (!this.isShardDone) return this.fetch();
    this.phase = 'close';
    this.owner.runInsertStreamStep(
      [this.shards[this.shardIndex]],
      [Frontend.Query],
      [query(`CLOSE ${INSERT_SOURCE_CURSOR}`)],
    );
  }

  /** The fetched rows written into the client's INSERT, routed as the next request. */
  private writeBatch(): void {
    this.phase = 'insert';
    const { rows, keys } = this;
    const isSplit =
      this.splitter !== null &&
      !this.hasNullKey &&
      rows.length > 0 &&
      !describesStatement(this.clientTypes, this.clientFrames);
    this.rows = [];
    this.keys = [];
    this.hasNullKey = false;
    this.rowBytes = 0;
    const bind =
      this.statement.bindIndex >= 0 ? decodeBind(this.clientFrames[this.statement.bindIndex]) : null;
    const paramTypes = paramTypesFor(this.statement, this.parts.tailParams, bind?.formats ?? []);
    const client = { types: this.clientTypes, frames: this.clientFrames };
    if (isSplit && this.splitter !== null) {
      const target = splitBatch(this.splitter, rows, keys, this.parts, this.statement, paramTypes, client);
      return this.owner.runInsertStreamSplit(target, target.parts[0]);
    }
    const sql = insertWithRows(this.parts, rows, this.columns);
    this.owner.routeInsertStreamBatch(
      withStatementText(this.clientTypes, this.clientFrames, this.statement, sql, paramTypes),
    );
  }
}

// INSERT … SELECT whose rows cannot be inserted where its query runs (router/route.ts SourceRowsNeeded): the proxy
// runs the query first — routed, fanned out and merged like any SELECT, inside the client's transaction when it has
// one — collects its rows here (bounded), and writes them into the INSERT as a VALUES list, which is then routed as
// any multi-row INSERT: split by shard, RETURNING merged, all-or-nothing across shards (2PC when on). The client sees
// one statement: one command tag, the INSERT's errors and RETURNING rows.
import { Buffer } from 'node:buffer';
import { Backend, Frontend } from '../protocol/codes.js';
import { query, SYNC } from '../protocol/messages.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { MessageWriter } from '../protocol/writer.js';
import { readDataRow, readRowDescription } from '../protocol/rows.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { decodeBind, encodeBind, encodeParse } from '../protocol/bind.js';
import { insertWithRows, valueLiteral, type InsertSelectParts } from '../router/insert-select.js';
import { RelayingOwner, type SessionRelay } from './fanout.js';
import type { RequestStatement } from '../frontend/request-rewrite.js';

/** Most bytes of rows (as SQL literals) an INSERT … SELECT across shards may hold in the proxy. */
export const INSERT_SOURCE_MAX_BYTES = 64 * 1024 * 1024;

/** Bind's result-format section with no codes: every column in text. */
const NO_RESULT_FORMATS = Buffer.from([0, 0]);

const TEXT_OID = 25;
const BYTEA_OID = 17;

/** Where an insert-source run reports its end: the INSERT … SELECT run that started it. */
export interface InsertSourceOwner {
  onInsertSourceDone(run: InsertSourceRun): void;
}

/**
 * Parameter types for a statement made of part of the client's: a parameter it uses keeps the client's type (0: the
 * server infers it); one it does not use is still bound, so it gets the client's declared type, else text (bytea for
 * a binary value: any bytes are valid), never "could not determine data type".
 */
export function paramTypesFor(
  statement: RequestStatement,
  used: ReadonlySet<number>,
  formats: readonly number[],
): number[] {
  const out: number[] = [];
  for (let k = 1; k <= statement.paramCount; k++) {
    const declared = statement.paramTypes[k - 1] ?? 0;
    if (used.has(k) || declared !== 0) out.push(declared);
    else out.push(formats[k - 1] === 1 ? BYTEA_OID : TEXT_OID);
  }
  return out;
}

/**
 * The request that runs the INSERT's query: a simple Query, or (extended protocol) an unnamed Parse + Bind with the
 * client's parameters, results in text, a Describe of the portal (the column types) and Execute, ended by Sync.
 */
export function sourceRequest(
  statement: RequestStatement,
  parts: InsertSelectParts,
  frames: readonly Buffer[],
): { types: number[]; frames: Buffer[] } {
  if (statement.isQuery) return { types: [Frontend.Query], frames: [query(parts.source)] };
  const bind = decodeBind(frames[statement.bindIndex]); // routing reached this request through its Bind
  // The Parse declares every parameter, the Bind passes the client's values as sent (a count that does not match is
  // answered by the server, as the client's own request would have been).
  const parseMap = Array.from({ length: statement.paramCount }, (_, i) => i + 1);
  const bindMap = Array.from({ length: bind.values.length }, (_, i) => i + 1);
  const types = paramTypesFor(statement, parts.sourceParams, bind.formats);
  const textResults = { ...bind, portal: '', resultFormats: NO_RESULT_FORMATS }; // every result column in text
  return {
    types: [Frontend.Parse, Frontend.Bind, Frontend.Describe, Frontend.Execute, Frontend.Sync],
    frames: [
      encodeParse(parts.source, types, parseMap),
      encodeBind(textResults, bindMap),
      new MessageWriter(8).int8(0x50 /* P */).cstring('').frame(Frontend.Describe),
      new MessageWriter(8).cstring('').int32(0).frame(Frontend.Execute),
      SYNC,
    ],
  };
}

/**
 * The query's merged reply, collected in place of the client (a FanoutOwner): each row is turned into its VALUES
 * literal as it arrives, so the proxy holds the rows once, as text, up to INSERT_SOURCE_MAX_BYTES.
 */
export class InsertSourceRun extends RelayingOwner {
  /** The client's own request (the shards ran the query instead). */
  readonly clientTypes: readonly number[];
  readonly clientFrames: readonly Buffer[];
  readonly parts: InsertSelectParts;
  readonly statement: RequestStatement;
  /** Called once when the rows outgrow the bound (the dispatch cancels the shards' statements). */
  onOverflow: (() => void) | null = null;
  private readonly owner: InsertSourceOwner;
  private readonly reader = new FrameReader(1 << 30);
  private readonly maxBytes: number;
  private typeOids: number[] = [];
  private columns = 0;
  private readonly rows: string[] = [];
  private bytes = 0;
  private error: PgError | null = null;

  /** `owner` is told when the query has run; the servers' other events go to `session` (RelayingOwner). */
  constructor(
    owner: InsertSourceOwner,
    session: SessionRelay,
    client: { types: readonly number[]; frames: readonly Buffer[] },
    statement: RequestStatement,
    parts: InsertSelectParts,
    maxBytes = INSERT_SOURCE_MAX_BYTES,
  ) {
    super(session);
    this.owner = owner;
    this.clientTypes = client.types;
    this.clientFrames = client.frames;
    this.statement = statement;
    this.parts = parts;
    this.maxBytes = maxBytes;
  }

  writeToClient(buf: Buffer): boolean {
    if (this.error !== null) return true;
    this.reader.push(buf, (type, frame) => this.onFrame(type, frame));
    return true;
  }

  private onFrame(type: number, frame: Buffer): void {
    if (this.error !== null) return;
    if (type === Backend.RowDescription) {
      const columns = readRowDescription(frame);
      this.typeOids = columns.map((c) => c.typeOid);
      this.columns = columns.length;
    } else if (type === Backend.DataRow) {
      const values = readDataRow(frame);
      this.columns = values.length;
      const row = `(${values.map((v, i) => valueLiteral(v === null ? null : v.toString('utf8'), this.typeOids[i] ?? 0)).join(', ')})`;
      this.bytes += row.length;
      if (this.bytes > this.maxBytes) return this.overflow();
      this.rows.push(row);
    } else if (type === Backend.ErrorResponse) {
      this.error = PgError.fromServer(frame);
    }
  }

  private overflow(): void {
    this.rows.length = 0;
    this.error = new PgError(
      'ERROR',
      SqlState.ProgramLimitExceeded,
      `INSERT … SELECT across shards holds the selected rows in the proxy, and these exceed ${Math.ceil(this.maxBytes / 1048576)} MiB`,
      undefined,
      'Insert in batches (e.g. by ranges of the key), or move the rows with COPY (SELECT …) TO STDOUT and COPY … FROM STDIN.',
    );
    this.onOverflow?.();
  }

  onClientDrain(resume: () => void): void {
    resume(); // never backpressured: the rows are held here (bounded)
  }

  onFanoutDone(): void {
    this.owner.onInsertSourceDone(this);
  }

  /** The query's error (the client gets it as the INSERT's), or the INSERT with the rows written in. */
  outcome(): { kind: 'error'; error: PgError } | { kind: 'insert'; sql: string; rows: number } {
    if (this.error !== null) return { kind: 'error', error: this.error };
    return {
      kind: 'insert',
      sql: insertWithRows(this.parts, this.rows, this.columns),
      rows: this.rows.length,
    };
  }

  /** Parameter types of the rewritten INSERT (its ON CONFLICT / RETURNING may still use some). */
  insertParamTypes(): number[] {
    const bind =
      this.statement.bindIndex >= 0 ? decodeBind(this.clientFrames[this.statement.bindIndex]) : null;
    return paramTypesFor(this.statement, this.parts.tailParams, bind?.formats ?? []);
  }
}

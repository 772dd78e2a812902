// Requests the proxy rewrites: the client's Query, or its Parse + Bind, with another statement text in place of its
// own (per-shard parts of a split INSERT, the rewritten SELECT a fan-out's shards run, sequence values or an INSERT's
// evaluated rows written in). The new statement is always the unnamed one; the client's Bind (portal, parameters,
// result formats) is kept. Pure: frames in, frames out.
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { query } from '../protocol/messages.js';
import { decodeBind, encodeBind, encodeParse } from '../protocol/bind.js';
import type { ShardQuery } from '../router/plan.js';
import { splitInsert } from '../router/rewrite.js';

/** One shard's frames of a split INSERT (`isParseInjected`: its ParseComplete is the proxy's, not the client's). */
export interface SplitPart {
  readonly types: number[];
  readonly frames: Buffer[];
  readonly isParseInjected: boolean;
}

/** The statement a request runs (SessionRouter.requestStatement). */
export interface RequestStatement {
  readonly text: string;
  readonly paramTypes: readonly number[];
  readonly isQuery: boolean;
  /** Where the request's Parse and Bind sit (-1: none). */
  readonly parseIndex: number;
  readonly bindIndex: number;
  /** Parameters the Bind supplies (at least the Parse's declared types). */
  readonly paramCount: number;
}

/** A request rewritten by the proxy; `clientParse`: the client's own Parse in it, to remember by name. */
export interface RewrittenRequest {
  types: number[];
  frames: Buffer[];
  clientParse: Buffer | null;
}

/**
 * The request with `sql` in place of `statement`: a Query with the new text, or an unnamed Parse (declaring
 * `paramTypes`) + the client's Bind, a Describe of the statement pointed at the new one.
 */
export function withStatementText(
  types: readonly number[],
  frames: readonly Buffer[],
  statement: RequestStatement,
  sql: string,
  paramTypes: readonly number[],
): RewrittenRequest {
  if (statement.isQuery) return { types: [Frontend.Query], frames: [query(sql)], clientParse: null };
  const paramMap = Array.from({ length: statement.paramCount }, (_, i) => i + 1);
  const { parseIndex, bindIndex } = statement;
  const source = { text: statement.text, paramTypes, isQuery: false };
  const part = rebuildRequest(sql, paramMap, source, types, frames, parseIndex, bindIndex);
  const outFrames = part.frames.map((f, i) =>
    part.types[i] === Frontend.Describe && f[5] === 0x53 /* S */ ? DESCRIBE_UNNAMED_STATEMENT : f,
  );
  return { types: part.types, frames: outFrames, clientParse: parseIndex >= 0 ? frames[parseIndex] : null };
}

export const DESCRIBE_UNNAMED_STATEMENT = Buffer.from([Frontend.Describe, 0, 0, 0, 6, 0x53, 0]);

/** The client's statement as a request carries it: its text, the Parse's declared types, and whether it is a Query. */
export interface StatementSource {
  readonly text: string;
  readonly paramTypes: readonly number[];
  readonly isQuery: boolean;
}

/**
 * The request with its statement replaced by `sql` (parameters picked from the original by `paramMap`): a Query, or
 * an unnamed Parse + Bind in place of the client's (a Parse is added before the Bind when the client's came earlier).
 */
export function rebuildRequest(
  sql: string,
  paramMap: readonly number[],
  source: StatementSource,
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): SplitPart {
  if (source.isQuery) return { types: [Frontend.Query], frames: [query(sql)], isParseInjected: false };
  const bind = bindIndex >= 0 ? decodeBind(frames[bindIndex]) : null;
  const outTypes: number[] = [];
  const outFrames: Buffer[] = [];
  const newParse = encodeParse(sql, source.paramTypes, paramMap);
  for (let i = 0; i < types.length; i++) {
    if (i === parseIndex) {
      outTypes.push(Frontend.Parse);
      outFrames.push(newParse);
    } else if (i === bindIndex && bind !== null) {
      if (parseIndex < 0) {
        outTypes.push(Frontend.Parse);
        outFrames.push(newParse);
      }
      outTypes.push(Frontend.Bind);
      outFrames.push(encodeBind(bind, paramMap));
    } else {
      outTypes.push(types[i]);
      outFrames.push(frames[i]);
    }
  }
  return { types: outTypes, frames: outFrames, isParseInjected: parseIndex < 0 };
}

/** The per-shard requests of a multi-row INSERT whose rows belong to several shards (`rowShards`: each row's shard). */
export function splitInsertRequests(
  rowShards: readonly number[],
  source: StatementSource,
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): { shards: number[]; parts: SplitPart[] } {
  const pieces = splitInsert(source.text, rowShards);
  return {
    shards: pieces.map((p) => p.shard),
    parts: pieces.map((piece) =>
      rebuildRequest(piece.sql, piece.paramMap, source, types, frames, parseIndex, bindIndex),
    ),
  };
}

/**
 * The request with its statement replaced by the plan's shard query: Bind's result formats extended to the hidden
 * columns (text) when it lists one per column, and a Describe of the client's statement pointed at the rewritten
 * (unnamed) one, whose RowDescription the merger turns back into the client's (parsed before that Describe when the
 * client's Parse came in an earlier request). `paramCount`: the parameters the client's Bind carries.
 */
export function shardQueryRequest(
  shardQuery: ShardQuery,
  paramCount: number,
  source: StatementSource,
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): SplitPart {
  const paramMap = Array.from({ length: paramCount }, (_, i) => i + 1);
  const part = rebuildRequest(shardQuery.sql, paramMap, source, types, frames, parseIndex, bindIndex);
  if (source.isQuery) return part;
  const outTypes = [...part.types];
  const outFrames = [...part.frames];
  // A Describe of the statement before its Bind (no Parse in the request): the rewritten statement is parsed there.
  const parseAt = outTypes.indexOf(Frontend.Parse);
  const describeAt = outTypes.findIndex(
    (t, i) => t === Frontend.Describe && outFrames[i][5] === 0x53 /* S */,
  );
  if (describeAt >= 0 && describeAt < parseAt) {
    const [parseFrame] = outFrames.splice(parseAt, 1);
    outTypes.splice(parseAt, 1);
    outFrames.splice(describeAt, 0, parseFrame);
    outTypes.splice(describeAt, 0, Frontend.Parse);
  }
  for (let i = 0; i < outTypes.length; i++) {
    if (outTypes[i] === Frontend.Bind && shardQuery.hiddenCount > 0)
      outFrames[i] = withHiddenResultFormats(outFrames[i], shardQuery);
    else if (outTypes[i] === Frontend.Describe && outFrames[i][5] === 0x53)
      outFrames[i] = DESCRIBE_UNNAMED_STATEMENT;
  }
  return { ...part, types: outTypes, frames: outFrames };
}

/**
 * A Bind whose per-column result format codes (more than one) get a code for each hidden column: the format of the
 * select-list entry it stands for (array_agg's elements), else text.
 */
function withHiddenResultFormats(frame: Buffer, shardQuery: ShardQuery): Buffer {
  const bind = decodeBind(frame);
  const count = bind.resultFormats.readInt16BE(0);
  if (count <= 1) return frame; // none (all text) or one for every column: hidden columns follow it
  const hiddenCount = shardQuery.hiddenCount;
  const formats = Buffer.alloc(2 + 2 * (count + hiddenCount));
  bind.resultFormats.copy(formats, 0, 0, 2 + 2 * count);
  formats.writeInt16BE(count + hiddenCount, 0);
  shardQuery.hiddenFormatSources.forEach((source, j) => {
    if (source !== null && source <= count)
      formats.writeInt16BE(bind.resultFormats.readInt16BE(2 * source), 2 + 2 * (count + j));
  });
  const paramMap = bind.values.map((_, i) => i + 1);
  return encodeBind({ ...bind, resultFormats: formats }, paramMap);
}

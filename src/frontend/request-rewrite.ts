// Requests the proxy rewrites: the client's Query, or its Parse + Bind, with another statement text in place of its
// own (per-shard parts of a split INSERT, sequence values or an INSERT's evaluated rows written in). The new
// statement is always the unnamed one; the client's Bind (portal, parameters, result formats) is kept.
import { Frontend } from '../protocol/codes.js';
import { query } from '../protocol/messages.js';
import { decodeBind, encodeBind, encodeParse } from '../protocol/bind.js';

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

export function rebuildRequest(
  sql: string,
  paramMap: readonly number[],
  source: { text: string; paramTypes: readonly number[]; isQuery: boolean },
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

// Requests the proxy rewrites (frontend/request-rewrite.ts): the shard query of a fan-out SELECT in place of the
// client's statement (Query, or unnamed Parse + the client's Bind), Bind result formats extended to hidden columns, a
// statement Describe pointed at the rewritten statement (and parsed before it), and the per-shard parts of a split
// INSERT. Frames in, frames out; no sockets.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DESCRIBE_UNNAMED_STATEMENT,
  shardQueryRequest,
  splitInsertRequests,
} from '../../../src/frontend/request-rewrite.js';
import { decodeBind } from '../../../src/protocol/bind.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { query, SYNC } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { initParser } from '../../../src/router/parser.js';
import type { ShardQuery } from '../../../src/router/plan.js';

beforeAll(async () => {
  await initParser();
});

const SHARD_QUERY: ShardQuery = {
  sql: 'SELECT sum(x), count(x) FROM t WHERE y = $1',
  hiddenCount: 1,
  hiddenFormatSources: [null],
};

function bind(statement: string, params: string[], resultFormats: number[]): Buffer {
  const w = new MessageWriter().cstring('').cstring(statement).int16(0).int16(params.length);
  for (const p of params) w.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  w.int16(resultFormats.length);
  for (const f of resultFormats) w.int16(f);
  return w.frame(Frontend.Bind);
}

const describeStatement = (name: string): Buffer =>
  new MessageWriter().int8(0x53).cstring(name).frame(Frontend.Describe);

/** The SQL text of a Query or an unnamed Parse. */
const sqlOf = (frame: Buffer): string =>
  frame.toString(
    'utf8',
    frame[0] === Frontend.Query ? 5 : 6,
    frame.indexOf(0, frame[0] === Frontend.Query ? 5 : 6),
  );

describe('shardQueryRequest', () => {
  it('replaces a Query’s text', () => {
    const source = { text: 'SELECT avg(x) FROM t', paramTypes: [], isQuery: true };
    const part = shardQueryRequest(SHARD_QUERY, 0, source, [Frontend.Query], [query(source.text)], -1, -1);
    expect(part.types).toEqual([Frontend.Query]);
    expect(sqlOf(part.frames[0])).toBe(SHARD_QUERY.sql);
  });

  it('parses the shard query before a Describe of the client’s statement, and extends per-column formats', () => {
    const source = { text: 'SELECT avg(x) FROM t WHERE y = $1', paramTypes: [23], isQuery: false };
    const types = [Frontend.Describe, Frontend.Bind, Frontend.Sync];
    const frames = [describeStatement('s1'), bind('s1', ['5'], [1, 1]), SYNC];
    const part = shardQueryRequest(SHARD_QUERY, 1, source, types, frames, -1, 1);
    expect(part.types).toEqual([Frontend.Parse, Frontend.Describe, Frontend.Bind, Frontend.Sync]);
    expect(part.isParseInjected).toBe(true);
    expect(sqlOf(part.frames[0])).toBe(SHARD_QUERY.sql);
    expect(part.frames[1]).toEqual(DESCRIBE_UNNAMED_STATEMENT);
    const rebound = decodeBind(part.frames[2]);
    expect(rebound.statement).toBe('');
    expect(rebound.values).toEqual([Buffer.from('5')]);
    // two client columns in binary, the hidden count in text
    expect([...rebound.resultFormats]).toEqual([0, 3, 0, 1, 0, 1, 0, 0]);
  });

  it('leaves a Bind with one format code for every column as it is', () => {
    const source = { text: 'SELECT avg(x) FROM t WHERE y = $1', paramTypes: [], isQuery: false };
    const frames = [bind('', ['5'], [1])];
    const part = shardQueryRequest(SHARD_QUERY, 1, source, [Frontend.Bind], frames, -1, 0);
    expect([...decodeBind(part.frames[1]).resultFormats]).toEqual([0, 1, 0, 1]);
  });
});

describe('splitInsertRequests', () => {
  it('gives each shard the INSERT of its rows', () => {
    const source = { text: 'INSERT INTO t (id) VALUES (1), (2), (3)', paramTypes: [], isQuery: true };
    const { shards, parts } = splitInsertRequests(
      [1, 0, 1],
      source,
      [Frontend.Query],
      [query(source.text)],
      -1,
      -1,
    );
    expect(shards).toEqual([0, 1]);
    expect(parts.map((p) => sqlOf(p.frames[0]))).toEqual([
      'INSERT INTO t (id) VALUES (2)',
      'INSERT INTO t (id) VALUES (1), (3)',
    ]);
  });
});

// What a routed request runs (frontend/batch-target.ts): COPY and split INSERTs must be alone, a statement Describe
// cannot join a split, session statements and DDL are broadcast, replicated writes reported once, a fan-out SELECT
// whose merge needs a rewrite runs the shard query on every shard, and the flags the transaction handling reads.
// Plans from the real analyser, routes as the router makes them; no sockets.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchTarget,
  functionCallTarget,
  oneShardTarget,
  type BatchTarget,
  type RoutedRequest,
} from '../../../src/frontend/batch-target.js';
import { BROADCAST_SPEC } from '../../../src/execute/merge-spec.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

const DATABASE = { shardCount: 2, textCollation: null };

/** A simple Query `sql` routed to `route` (its only statement unless `statements` says otherwise). */
function routed(sql: string, route: RoutedRequest['route'], statements = 1): RoutedRequest {
  const plan = analyzeQuery(sql, SCHEMA)[0];
  return {
    route,
    plan,
    params: null,
    statements,
    mayWrite: plan.isWrite,
    preventsPrepare: null,
    source: { text: sql, paramTypes: [], isQuery: true },
    parseIndex: -1,
    bindIndex: -1,
  };
}

function target(
  r: RoutedRequest,
  types: readonly number[] = [Frontend.Query],
  frames: readonly Buffer[] = [query(r.source?.text ?? '')],
): BatchTarget {
  return batchTarget(r, types, frames, DATABASE);
}

function errorOf(fn: () => unknown): PgError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

describe('batchTarget', () => {
  it('runs COPY … FROM STDIN alone as a multi-shard write, naming its table', () => {
    const copy = analyzeQuery('COPY users FROM STDIN', SCHEMA)[0].copy;
    if (copy === null) throw new Error('expected COPY info');
    const route = { kind: 'copy_in', shards: [0, 1], copy } as const;
    expect(target(routed('COPY users FROM STDIN', route))).toMatchObject({
      kind: 'copyIn',
      shards: [0, 1],
      table: 'users',
      isMultiShardWrite: true,
      isWrite: true,
    });
    expect(errorOf(() => target(routed('COPY users FROM STDIN', route, 2))).message).toBe(
      'COPY … FROM STDIN on a sharded database must be sent alone, as a simple Query',
    );
  });

  it('splits a multi-row INSERT by row shard, unless a statement Describe is in the request', () => {
    const sql = 'INSERT INTO users (id) VALUES (1), (2), (3)';
    const r = routed(sql, { kind: 'split', rowShards: [1, 0, 1] });
    const split = target(r);
    expect(split).toMatchObject({ kind: 'split', shards: [0, 1], isMultiShardWrite: true });
    if (split.kind !== 'split') throw new Error('expected a split');
    expect(split.spec.rowShards).toEqual([1, 0, 1]); // each row's index into `shards`
    expect(split.parts.map((p) => p.frames[0].toString('utf8', 5, p.frames[0].length - 1))).toEqual([
      'INSERT INTO users (id) VALUES (2)',
      'INSERT INTO users (id) VALUES (1), (3)',
    ]);
    const describe = new MessageWriter().int8(0x53).cstring('').frame(Frontend.Describe);
    expect(
      errorOf(() => target(r, [Frontend.Query, Frontend.Describe], [query(sql), describe])).message,
    ).toMatch(/^a multi-row INSERT split across shards cannot be described as a statement/);
    expect(errorOf(() => target(routed(sql, { kind: 'split', rowShards: [1, 0, 1] }, 2))).code).toBe('0A000');
  });

  it('broadcasts session statements (on every shard) and DDL; reports a replicated write once', () => {
    const begin = target(routed('BEGIN', { kind: 'session' }));
    expect(begin).toMatchObject({ kind: 'many', shards: [0, 1], spec: BROADCAST_SPEC, isSessionLevel: true });
    expect(begin.sessionStatement?.kind).toBe('begin');
    const ddl = target(routed('CREATE TABLE t (id int)', { kind: 'many', shards: [0, 1] }));
    expect(ddl).toMatchObject({ spec: BROADCAST_SPEC, isSessionLevel: false, sessionStatement: null });
    const replicated = target(
      routed("UPDATE countries SET name = 'x'", { kind: 'many', shards: [0, 1], isReplicated: true }),
    );
    expect(replicated).toMatchObject({
      spec: { isReplicated: true, isBroadcast: true },
      isMultiShardWrite: true,
    });
    const commit = target(routed('COMMIT', { kind: 'session' }));
    expect(commit.isCommit).toBe(true);
  });

  it('runs the rewritten SELECT on every shard when the merge needs it, the client’s text otherwise', () => {
    const rewritten = target(routed('SELECT avg(id) FROM users', { kind: 'many', shards: [0, 1] }));
    expect(rewritten.kind).toBe('split');
    if (rewritten.kind !== 'split') throw new Error('expected the rewritten SELECT');
    expect(rewritten.parts).toHaveLength(2);
    expect(rewritten.parts[0].frames[0].toString()).toMatch(/count/);
    expect(rewritten.spec.aggregates).toEqual([{ column: 0, fn: 'avg', countColumn: 1 }]);
    const plain = target(routed('SELECT id FROM users ORDER BY id', { kind: 'many', shards: [0, 1] }));
    expect(plain).toMatchObject({ kind: 'many', isMultiShardWrite: false, isWrite: false });
    if (plain.kind !== 'many') throw new Error('expected a fan-out');
    expect(plain.spec.orderBy).toEqual([{ column: 0, isDescending: false, isNullsFirst: false }]);
  });

  it('marks a write on two shards as a multi-shard write, on one shard not', () => {
    const update = "UPDATE users SET name = 'x'";
    expect(target(routed(update, { kind: 'many', shards: [0, 1] })).isMultiShardWrite).toBe(true);
    expect(target(routed(update, { kind: 'many', shards: [1] })).isMultiShardWrite).toBe(false);
  });
});

describe('one-shard targets', () => {
  it('carry what the statements say; a FunctionCall may write', () => {
    expect(oneShardTarget(1, true, 'temporary table')).toEqual({
      kind: 'one',
      shard: 1,
      isSessionLevel: false,
      isMultiShardWrite: false,
      isCommit: false,
      isWrite: false,
      mayWrite: true,
      preventsPrepare: 'temporary table',
      sessionStatement: null,
    });
    expect(functionCallTarget(0)).toMatchObject({ kind: 'one', shard: 0, isWrite: true, mayWrite: true });
  });
});

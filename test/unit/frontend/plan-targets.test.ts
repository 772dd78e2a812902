// A cached plan keeps its route and target (frontend/plan-targets.ts) only when they depend on its text alone: reused
// by the next request of the same statement, frozen; never for a sharding key given as a parameter, an omnisharded
// read (round-robin), a LIMIT parameter, while the session routes by hand, after the plans are dropped (DDL, columns
// learnt, reload) or once the database's collation is known.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SessionRouter,
  type DatabaseRouting,
  type RouteOutcome,
} from '../../../src/frontend/session-router.js';
import { mayDependOnValues } from '../../../src/frontend/plan-targets.js';
import { mergeSpecFor } from '../../../src/execute/fanout-merge-spec.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import { routeStatement } from '../../../src/router/route.js';
import type { BindParams } from '../../../src/router/bind-params.js';
import { shardForLiteral } from '../../../src/sharding/shard-of.js';
import { extendedFrames } from '../../helpers/extended-frames.js';
import { CORPUS } from '../router/corpus.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

function routing(): DatabaseRouting & { reads: number } {
  let next = 0;
  const r = {
    schema: SCHEMA,
    plans: new PlanCache(),
    textCollation: null as string | null,
    reads: 0,
    nextReadShard: () => {
      r.reads++;
      next = (next + 1) % SCHEMA.shardCount;
      return next;
    },
  };
  return r;
}

function route(r: SessionRouter, frames: Buffer[]): RouteOutcome {
  return r.route(
    frames.map((f) => f[0]),
    frames,
  );
}

function shardsOf(outcome: RouteOutcome): readonly number[] {
  if (outcome.kind === 'one') return [outcome.shard];
  if (outcome.kind === 'many' || outcome.kind === 'split' || outcome.kind === 'copyIn') return outcome.shards;
  throw new Error(`not routed: ${outcome.kind}`);
}

/** Two key values of users.id that live on different shards. */
function keysOnTwoShards(): [string, string] {
  const column = SCHEMA.shardedColumns[0];
  const first = shardForLiteral(column, SCHEMA.shardCount, '1');
  for (let k = 2; ; k++)
    if (shardForLiteral(column, SCHEMA.shardCount, String(k)) !== first) return ['1', String(k)];
}

const ORDERED = 'SELECT id, name FROM users ORDER BY id';

describe('a cached plan keeps its target when its text alone decides it', () => {
  it('a fan-out with ORDER BY: the next request reuses the same frozen target, spec and shards', () => {
    const r = new SessionRouter(routing());
    const first = route(r, extendedFrames(ORDERED));
    const second = route(r, extendedFrames(ORDERED));
    expect(first.kind).toBe('many');
    expect(second).toBe(first);
    const target = first as Extract<RouteOutcome, { kind: 'many' }>;
    expect(target.shards).toEqual([0, 1]);
    expect(target.spec.orderBy).toEqual([{ column: 0, isDescending: false, isNullsFirst: false }]);
    expect(Object.isFrozen(target)).toBe(true);
    expect(Object.isFrozen(target.spec.orderBy[0])).toBe(true);
    expect(() => (target.shards as number[]).push(2)).toThrow(TypeError);
  });

  it('is shared by the sessions of the database, and by a simple Query of the same text', () => {
    const db = routing();
    const a = route(new SessionRouter(db), extendedFrames(ORDERED));
    expect(route(new SessionRouter(db), extendedFrames(ORDERED))).toBe(a);
    expect(route(new SessionRouter(db), [query(ORDERED)])).toBe(a);
  });

  it('a parameter that is not the key (WHERE name = $1): the target does not depend on it and is reused', () => {
    const r = new SessionRouter(routing());
    const sql = 'SELECT id FROM users WHERE name = $1 ORDER BY id';
    const a = route(r, extendedFrames(sql, ['x']));
    expect(route(r, extendedFrames(sql, ['y']))).toBe(a);
    expect(shardsOf(a)).toEqual([0, 1]);
  });

  it('a literal sharding key: its one shard, the right one for each text', () => {
    const [k1, k2] = keysOnTwoShards();
    const r = new SessionRouter(routing());
    const column = SCHEMA.shardedColumns[0];
    for (const k of [k1, k2, k1, k2]) {
      expect(shardsOf(route(r, extendedFrames(`SELECT name FROM users WHERE id = ${k}`)))).toEqual([
        shardForLiteral(column, SCHEMA.shardCount, k),
      ]);
    }
  });
});

describe('a cached plan keeps no target when something besides its text decides it', () => {
  it('the sharding key as a parameter: each Bind routes by its own value', () => {
    const [k1, k2] = keysOnTwoShards();
    const r = new SessionRouter(routing());
    const sql = 'SELECT name FROM users WHERE id = $1';
    const column = SCHEMA.shardedColumns[0];
    for (const k of [k1, k2, k1, k2])
      expect(shardsOf(route(r, extendedFrames(sql, [k])))).toEqual([
        shardForLiteral(column, SCHEMA.shardCount, k),
      ]);
  });

  it('an omnisharded read: a round-robin shard per request, never frozen into one', () => {
    const db = routing();
    const r = new SessionRouter(db);
    const shards = [0, 1, 2, 3].map(
      () => shardsOf(route(r, extendedFrames('SELECT name FROM countries')))[0],
    );
    expect(shards).toEqual([1, 0, 1, 0]);
    expect(db.reads).toBe(4);
  });

  it('LIMIT $1: each request merges with its own limit', () => {
    const r = new SessionRouter(routing());
    const sql = 'SELECT id FROM users ORDER BY id LIMIT $1';
    const a = route(r, extendedFrames(sql, ['2'])) as Extract<RouteOutcome, { kind: 'many' }>;
    const b = route(r, extendedFrames(sql, ['5'])) as Extract<RouteOutcome, { kind: 'many' }>;
    expect([a.spec.limit, b.spec.limit]).toEqual([2, 5]);
  });

  it('SET shardgate.shard / sharding_key: the session routes by hand until RESET, then the kept target again', () => {
    const [, k2] = keysOnTwoShards();
    const r = new SessionRouter(routing());
    const kept = route(r, extendedFrames(ORDERED));
    route(r, [query('SET shardgate.shard = 1')]);
    expect(shardsOf(route(r, extendedFrames(ORDERED)))).toEqual([1]);
    route(r, [query('RESET shardgate.shard')]);
    expect(route(r, extendedFrames(ORDERED))).toBe(kept);
    route(r, [query(`SET shardgate.sharding_key = '${k2}'`)]);
    const column = SCHEMA.shardedColumns[0];
    expect(shardsOf(route(r, extendedFrames(ORDERED)))).toEqual([
      shardForLiteral(column, SCHEMA.shardCount, k2),
    ]);
    route(r, [query('RESET shardgate.sharding_key')]);
    expect(route(r, extendedFrames(ORDERED))).toBe(kept);
  });

  it('a shard comment is part of the text: its shard is kept', () => {
    const r = new SessionRouter(routing());
    const sql = '/* shardgate: shard=1 */ SELECT id FROM users ORDER BY id';
    expect(shardsOf(route(r, extendedFrames(sql)))).toEqual([1]);
    expect(shardsOf(route(r, extendedFrames(sql)))).toEqual([1]);
  });

  it('plans dropped (DDL, columns learnt, config reload): a new target from the new plan', () => {
    const r = new SessionRouter(routing());
    const kept = route(r, extendedFrames(ORDERED));
    r.learnTableColumns('users', ['id', 'name']); // drops the plans made before
    const again = route(r, extendedFrames(ORDERED));
    expect(again).not.toBe(kept);
    expect(again).toEqual(kept);
    expect(route(r, extendedFrames(ORDERED))).toBe(again);
  });

  it('the database collation learnt after the target was kept: the spec carries it', () => {
    const db = routing();
    const r = new SessionRouter(db);
    const before = route(r, extendedFrames(ORDERED)) as Extract<RouteOutcome, { kind: 'many' }>;
    expect(before.spec.textCollation).toBeUndefined();
    db.textCollation = 'en_US.UTF-8';
    const after = route(r, extendedFrames(ORDERED)) as Extract<RouteOutcome, { kind: 'many' }>;
    expect(after.spec.textCollation).toBe('en_US.UTF-8');
    expect(route(r, extendedFrames(ORDERED))).toBe(after);
  });

  it('a FunctionCall behind the statement makes the request a writer: not the kept read-only target', () => {
    const r = new SessionRouter(routing());
    const kept = route(r, extendedFrames(ORDERED));
    const call = new MessageWriter().int32(1).int16(0).int16(0).int16(0).frame(Frontend.FunctionCall);
    const withCall = route(r, extendedFrames(ORDERED, [], [call]));
    expect(withCall).not.toBe(kept);
    expect(withCall.kind === 'many' && withCall.mayWrite).toBe(true);
    expect(route(r, extendedFrames(ORDERED))).toBe(kept);
  });
});

describe('mayDependOnValues', () => {
  const values = (n: number, v: string): BindParams => ({
    values: Array.from({ length: n }, () => Buffer.from(v)),
    formats: Array.from({ length: n }, () => 0 as const),
  });
  /** Route and merge spec of `sql` with every parameter bound to `v` (or the error it throws). */
  function decided(sql: string, v: string): unknown {
    const plan = analyzeQuery(sql, SCHEMA)[0];
    const params = values(plan.paramCount, v);
    const ctx = { schema: SCHEMA, sessionShard: null, sessionShardingKey: null, pickReadShard: () => 0 };
    try {
      return [routeStatement(plan, params, ctx), mergeSpecFor(plan, params, null)];
    } catch (err) {
      return (err as Error).message;
    }
  }

  it('is false only where other Bind values route and merge the same (the client corpus and more)', () => {
    const more = [
      'SELECT id FROM users WHERE name = $1 ORDER BY id',
      'SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2',
      'SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > $1',
      'SELECT string_agg(name, $1 ORDER BY name) FROM users',
      'SELECT * FROM (SELECT id FROM users OFFSET $1) s',
      'SELECT id FROM users WHERE id = ANY($1)',
      'EXPLAIN SELECT id FROM users WHERE id = $1',
      'UPDATE users SET name = $1 WHERE id = $2',
    ];
    let independent = 0;
    for (const sql of [...CORPUS.map((c) => c.sql), ...more]) {
      let plan;
      try {
        plan = analyzeQuery(sql, SCHEMA)[0];
      } catch {
        continue;
      }
      if (plan === undefined || mayDependOnValues(plan)) continue;
      independent++;
      expect(decided(sql, '3'), sql).toEqual(decided(sql, '8'));
    }
    expect(independent).toBeGreaterThan(20);
    for (const sql of more.slice(1)) expect(mayDependOnValues(analyzeQuery(sql, SCHEMA)[0]), sql).toBe(true);
    expect(mayDependOnValues(analyzeQuery(more[0], SCHEMA)[0])).toBe(false);
  });
});

// A request whose one statement is routed by one key (router/route.ts singleKeyParam) takes the hot path of
// SessionRouter.route: the key hashed from the Bind frame in place (protocol/bind.ts bindValueAt) or from the simple
// Query's literal. It must give the shard the key's value gives, in every Bind shape — unnamed or named statement,
// text or binary, NULL, the key not first, a malformed Bind, a Bind lacking the key — as the general path did.
import { beforeAll, describe, expect, it } from 'vitest';
import { SessionRouter, type RouteOutcome } from '../../../src/frontend/session-router.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { SYNC, query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { shardForLiteral, shardForParameter } from '../../../src/sharding/shard-of.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

const ACCOUNTS = SCHEMA.shardedColumns[3]; // pgbench_accounts.aid, integer
const USERS = SCHEMA.shardedColumns[0]; // users.id, bigint

function router(): SessionRouter {
  return new SessionRouter({
    schema: { ...SCHEMA, shardCount: 5 },
    plans: new PlanCache(),
    literalPlans: new PlanCache<StatementPlan | null>(),
    textCollation: null,
    nextReadShard: () => 0,
  });
}

function route(r: SessionRouter, frames: Buffer[]): RouteOutcome {
  return r.route(
    frames.map((f) => f[0]),
    frames,
  );
}

function shardOf(outcome: RouteOutcome): number {
  if (outcome.kind !== 'one') throw new Error(`not one shard: ${outcome.kind}`);
  return outcome.shard;
}

function errorOf(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (err) {
    if (err instanceof PgError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a PgError');
}

function parse(name: string, sql: string): Buffer {
  return new MessageWriter().cstring(name).cstring(sql).int16(0).frame(Frontend.Parse);
}

/** A Bind of `statement` with `values` (null: SQL NULL) in `format` (one code for all). */
function bind(statement: string, values: (Buffer | null)[], format: 0 | 1 = 0): Buffer {
  const w = new MessageWriter().cstring('').cstring(statement).int16(1).int16(format).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.int16(0).frame(Frontend.Bind);
}

const EXECUTE = new MessageWriter().cstring('').int32(0).frame(Frontend.Execute);
const KEYED = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
const KEY_SECOND = 'SELECT id FROM users WHERE name = $1 AND id = $2';

describe('one-key requests on the hot path', () => {
  it('unnamed and named statements, text keys: the shard of the key value', () => {
    const r = router();
    route(r, [parse('s1', KEYED), SYNC]);
    for (const key of ['0', '1', '-1', '77', '2147483647', '-2147483648', ' 12', '+12']) {
      const expected = shardForLiteral(ACCOUNTS, 5, key);
      const k = Buffer.from(key);
      expect(shardOf(route(r, [parse('', KEYED), bind('', [k]), EXECUTE, SYNC])), key).toBe(expected);
      expect(shardOf(route(r, [bind('s1', [k]), EXECUTE, SYNC])), key).toBe(expected);
    }
  });

  it('binary keys, a NULL key, and the key as the second parameter', () => {
    const r = router();
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(-123456);
    const expected = shardForParameter(ACCOUNTS, 5, int4, 1);
    expect(shardOf(route(r, [parse('', KEYED), bind('', [int4], 1), EXECUTE, SYNC]))).toBe(expected);
    expect(shardOf(route(r, [parse('', KEYED), bind('', [null]), EXECUTE, SYNC]))).toBe(0);
    for (const key of ['5', '123456789012345', '-9223372036854775808']) {
      const frames = [parse('', KEY_SECOND), bind('', [Buffer.from('x'), Buffer.from(key)]), EXECUTE, SYNC];
      expect(shardOf(route(r, frames)), key).toBe(shardForLiteral(USERS, 5, key));
    }
  });

  it('a bad key, a Bind lacking the key and a malformed Bind are the errors they were', () => {
    const r = router();
    expect(errorOf(() => route(r, [parse('', KEYED), bind('', [Buffer.from('12x')]), SYNC])).code).toBe(
      '22P02',
    );
    expect(
      errorOf(() => route(r, [parse('', KEYED), bind('', [Buffer.from('2147483648')]), SYNC])).code,
    ).toBe('22003');
    expect(errorOf(() => route(r, [parse('', KEYED), bind('', []), SYNC]))).toEqual({
      code: '08P01',
      message: 'bind message supplies 0 parameters, but the sharding key is $1',
    });
    const truncated = bind('', [Buffer.from('12')]).subarray(0, 14);
    expect(errorOf(() => route(r, [parse('', KEYED), truncated, SYNC])).code).toBe('08P01');
  });

  it('simple Queries: the shard of the literal, quoted or not; a bad literal routes by the raw text', () => {
    const r = router();
    for (const key of ['0', '48213', '-5', '2147483647']) {
      const expected = shardForLiteral(ACCOUNTS, 5, key);
      const sql = `SELECT abalance FROM pgbench_accounts WHERE aid = ${key};`;
      expect(shardOf(route(r, [query(sql)])), sql).toBe(expected);
      expect(shardOf(route(r, [query(`SELECT abalance FROM pgbench_accounts WHERE aid = '${key}'`)]))).toBe(
        expected,
      );
    }
    // Out of int4 range: the raw text's plan routes it, and its key is refused there as before.
    expect(
      errorOf(() => route(r, [query('SELECT abalance FROM pgbench_accounts WHERE aid = 99999999999')])).code,
    ).toBe('22003');
  });
});

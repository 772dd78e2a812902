// routeStatement: plan + parameters + session state → one shard, several, or session-level; 0A000 when unsafe.
import { beforeAll, describe, expect, it } from 'vitest';
import { initParser } from '../../../src/router/parser.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { routeStatement, type Route, type RouteContext } from '../../../src/router/route.js';
import { decodeArrayParam, decodeBindParams, type BindParams } from '../../../src/router/bind-params.js';
import { shardForLiteral } from '../../../src/sharding/shard-of.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { SCHEMA } from './fixtures.js';

const usersId = SCHEMA.shardedColumns[0];
const shardOf = (id: number): number => shardForLiteral(usersId, 2, String(id));
/** Two ids on different shards, found rather than assumed. */
let idOn0 = 0;
let idOn1 = 0;

function ctx(over: Partial<RouteContext> = {}): RouteContext {
  return { schema: SCHEMA, sessionShard: null, sessionShardingKey: null, pickReadShard: () => 1, ...over };
}

function route(sql: string, params: BindParams | null = null, c = ctx()): Route {
  const [plan] = analyzeQuery(sql, SCHEMA);
  return routeStatement(plan, params, c);
}

function textParams(...values: (string | null)[]): BindParams {
  return { values: values.map((v) => (v === null ? null : Buffer.from(v))), formats: values.map(() => 0) };
}

function routeError(sql: string, params: BindParams | null = null): PgError {
  try {
    route(sql, params);
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error(`expected an error for: ${sql}`);
}

beforeAll(async () => {
  await initParser();
  for (let i = 1; idOn0 === 0 || idOn1 === 0; i++) {
    if (shardOf(i) === 0 && idOn0 === 0) idOn0 = i;
    if (shardOf(i) === 1 && idOn1 === 0) idOn1 = i;
  }
});

describe('routeStatement', () => {
  it('sends a keyed statement to the shard of its literal key', () => {
    expect(route(`select * from users where id = ${idOn1}`)).toEqual({ kind: 'one', shard: 1 });
    expect(route(`update users set name = 'x' where id = ${idOn0}`)).toEqual({ kind: 'one', shard: 0 });
    expect(route(`delete from users where id = ${idOn1}`)).toEqual({ kind: 'one', shard: 1 });
  });

  it('decides at Bind from text and binary parameters', () => {
    expect(route('select * from users where id = $1', textParams(String(idOn1)))).toEqual({
      kind: 'one',
      shard: 1,
    });
    const bin = Buffer.alloc(8);
    bin.writeBigInt64BE(BigInt(idOn0));
    expect(route('select * from users where id = $1', { values: [bin], formats: [1] })).toEqual({
      kind: 'one',
      shard: 0,
    });
  });

  it('unions the shards of IN lists and = ANY($n) arrays', () => {
    expect(route(`select * from users where id in (${idOn0}, ${idOn1})`)).toEqual({
      kind: 'many',
      shards: [0, 1],
    });
    expect(route(`select * from users where id in (${idOn1}, ${idOn1})`)).toEqual({ kind: 'one', shard: 1 });
    expect(route('select * from users where id = any($1)', textParams(`{${idOn0},${idOn1}}`))).toEqual({
      kind: 'many',
      shards: [0, 1],
    });
  });

  it('fans out statements without a key, and DDL', () => {
    expect(route('select count(*) from users')).toEqual({ kind: 'many', shards: [0, 1] });
    expect(route('create table t (id bigint primary key)')).toEqual({ kind: 'many', shards: [0, 1] });
    expect(route('update users set name = 1')).toEqual({ kind: 'many', shards: [0, 1] });
  });

  it('leaves transaction control and settings to the session', () => {
    for (const sql of [
      'begin',
      'commit',
      'rollback',
      'savepoint a',
      "set application_name = 'x'",
      'reset all',
    ]) {
      expect(route(sql)).toEqual({ kind: 'session' });
    }
  });

  it('reads catalogs and omnisharded tables from one shard, writes omnisharded tables everywhere', () => {
    expect(route('select version()')).toEqual({ kind: 'one', shard: 1 });
    expect(route('select * from pg_catalog.pg_class')).toEqual({ kind: 'one', shard: 1 });
    expect(route('select * from countries')).toEqual({ kind: 'one', shard: 1 });
    expect(route("insert into countries values ('fr')")).toEqual({
      kind: 'many',
      shards: [0, 1],
      isReplicated: true,
    });
    expect(routeError("insert into gadgets values (1, 'x')").code).toBe('0A000'); // may be sharded by tenant_id
    expect(route('insert into knex_migrations (name) values ($1)', textParams('x'))).toEqual({
      kind: 'many',
      shards: [0, 1],
      isReplicated: true,
    });
  });

  it('routes a multi-row INSERT whose rows share a shard, and splits one that spans shards', () => {
    expect(route(`insert into users (id, name) values (${idOn1}, 'a'), (${idOn1}, 'b')`)).toEqual({
      kind: 'one',
      shard: 1,
    });
    expect(route('insert into users (id, name) values ($1, $2)', textParams(String(idOn0), 'n'))).toEqual({
      kind: 'one',
      shard: 0,
    });
    expect(route(`insert into users (id, name) values (${idOn0}, 'a'), (${idOn1}, 'b')`)).toEqual({
      kind: 'split',
      rowShards: [0, 1],
    });
  });

  it('refuses an INSERT whose key it cannot see, and an UPDATE that moves the key', () => {
    expect(routeError("insert into users (name) values ('a')").code).toBe('0A000');
    expect(routeError(`update users set id = id + 1 where id = ${idOn0}`).code).toBe('0A000');
  });

  it('rejects a key that does not fit the column type with 22P02, not a guess', () => {
    expect(routeError("select * from users where id = 'abc'").code).toBe('22P02');
    expect(routeError('select * from users where id = $1', textParams('1.5')).code).toBe('22P02');
  });

  it('honours manual routing: comments, sharding-key hints and the session setting', () => {
    expect(route('/* shardgate: shard=1 */ select * from users')).toEqual({ kind: 'one', shard: 1 });
    expect(route('select * from users', null, ctx({ sessionShard: 0 }))).toEqual({ kind: 'one', shard: 0 });
    expect(route('select * from users', null, ctx({ sessionShardingKey: String(idOn1) }))).toEqual({
      kind: 'one',
      shard: 1,
    });
    expect(routeError('/* shardgate: shard=7 */ select 1').code).toBe('22023');
  });

  it('refuses what cannot be answered across shards, with the reason', () => {
    const err = routeError('select * from users u join orders o on o.id = u.id');
    expect(err.code).toBe('0A000');
    expect(err.message.length).toBeGreaterThan(10);
    expect(err.hint).toMatch(/sharding key/);
  });
});

describe('decodeBindParams', () => {
  it('reads text, binary and NULL parameters with per-parameter formats', () => {
    const body = Buffer.concat([
      Buffer.from('portal\0stmt\0'),
      Buffer.from([0, 2, 0, 0, 0, 1]), // 2 format codes: text, binary
      Buffer.from([0, 2]), // 2 params
      Buffer.from([0, 0, 0, 2]),
      Buffer.from('42'),
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // NULL
      Buffer.from([0, 0]), // result formats
    ]);
    const frame = Buffer.concat([Buffer.from([0x42, 0, 0, 0, 0]), body]);
    frame.writeInt32BE(frame.length - 1, 1);
    const p = decodeBindParams(frame);
    expect(p.values.map((v) => v?.toString() ?? null)).toEqual(['42', null]);
    expect(p.formats).toEqual([0, 1]);
  });

  it('rejects a truncated Bind', () => {
    const frame = Buffer.from([0x42, 0, 0, 0, 8, 0, 0, 0, 9]);
    expect(() => decodeBindParams(frame)).toThrow(/insufficient data left in message/);
  });

  it('splits text and binary array parameters', () => {
    expect(decodeArrayParam(Buffer.from('{1, 2,"a b",NULL}'), 0).map((b) => b?.toString() ?? null)).toEqual([
      '1',
      '2',
      'a b',
      null,
    ]);
    const bin = Buffer.alloc(12 + 8 + 2 * (4 + 8));
    bin.writeInt32BE(1, 0); // ndim
    bin.writeInt32BE(0, 4); // has nulls
    bin.writeInt32BE(20, 8); // int8 oid
    bin.writeInt32BE(2, 12); // size
    bin.writeInt32BE(1, 16); // lower bound
    bin.writeInt32BE(8, 20);
    bin.writeBigInt64BE(7n, 24);
    bin.writeInt32BE(8, 32);
    bin.writeBigInt64BE(9n, 36);
    expect(decodeArrayParam(bin, 1).map((b) => b?.readBigInt64BE(0))).toEqual([7n, 9n]);
  });
});

describe('routeStatement: regressions found by the differential suite', () => {
  it('sends a statement whose key list is empty to one shard (no rows anywhere), not to none', () => {
    expect(route('select * from users where id = any($1)', textParams('{}'))).toEqual({
      kind: 'one',
      shard: 1,
    });
  });

  it('refuses a write to a copied table that reads sharded rows (the copies would diverge)', () => {
    const err = routeError('update countries set name = u.name from users u where u.id = countries.id');
    expect(err.code).toBe('0A000');
    expect(err.message).toMatch(/copied to every shard/);
  });
});

describe("routeStatement: the client's own two-phase commit statements", () => {
  it('refuses PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED across shards, with a hint', () => {
    for (const sql of ["prepare transaction 'x'", "commit prepared 'x'", "rollback prepared 'x'"]) {
      const err = routeError(sql);
      expect(err.code).toBe('0A000');
      expect(err.hint).toMatch(/two_phase_commit = true/);
    }
  });

  it('sends them to the one shard the session is routed to', () => {
    const [plan] = analyzeQuery("commit prepared 'x'", SCHEMA);
    expect(routeStatement(plan, null, ctx({ sessionShard: 1 }))).toEqual({ kind: 'one', shard: 1 });
    expect(route("/* shardgate: shard=0 */ prepare transaction 'x'")).toEqual({ kind: 'one', shard: 0 });
  });
});

describe('routeStatement: what must be learnt first is a result, not an exception', () => {
  it('an INSERT without a column list into a sharded table: learn its columns', () => {
    expect(route("insert into users values (1, 'a')")).toEqual({
      kind: 'learn',
      need: { kind: 'tableColumns', table: 'users' },
    });
  });

  it('an INSERT … SELECT whose key does not come from a co-located key: learn its rows', () => {
    const sql = 'insert into users (id, name) select id, name from staging';
    expect(route(sql)).toEqual({ kind: 'learn', need: { kind: 'sourceRows', text: sql } });
  });

  it('an INSERT with no way to find its shard is still an error', () => {
    expect(routeError("insert into users (name) values ('a')").code).toBe('0A000');
  });
});

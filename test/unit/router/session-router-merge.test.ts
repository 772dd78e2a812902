// SessionRouter for fan-out SELECTs whose shards run a rewritten statement (avg as sum + hidden count, hidden sort
// columns, HAVING moved to the merge): the per-shard request (Query, or Parse/Bind rebuilt), Bind result formats
// extended to the hidden columns, a Describe of the statement pointed at the rewritten one, and the merge spec.
import { beforeAll, describe, expect, it } from 'vitest';
import { SessionRouter, type RouteOutcome } from '../../../src/frontend/session-router.js';
import type { BatchTarget } from '../../../src/frontend/batch-target.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { query, SYNC } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import { decodeBind as readBind } from '../../../src/protocol/bind.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import { shardForLiteral } from '../../../src/sharding/shard-of.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function router(): SessionRouter {
  return new SessionRouter({
    schema: SCHEMA,
    plans: new PlanCache(),
    nextReadShard: () => 0,
    textCollation: null,
  });
}

function parse(name: string, sql: string, types: number[] = []): Buffer {
  const w = new MessageWriter().cstring(name).cstring(sql).int16(types.length);
  for (const t of types) w.int32(t);
  return w.frame(Frontend.Parse);
}

function bind(statement: string, params: (string | null)[], resultFormats: number[] = []): Buffer {
  const w = new MessageWriter().cstring('').cstring(statement).int16(0).int16(params.length);
  for (const p of params) {
    if (p === null) w.int32(-1);
    else w.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  }
  w.int16(resultFormats.length);
  for (const f of resultFormats) w.int16(f);
  return w.frame(Frontend.Bind);
}

function describeMessage(kind: 'S' | 'P', name: string): Buffer {
  return new MessageWriter().int8(kind.charCodeAt(0)).cstring(name).frame(Frontend.Describe);
}

const EXECUTE = new MessageWriter().cstring('').int32(0).frame(Frontend.Execute);

type Split = Extract<BatchTarget, { kind: 'split' }>;

function routeBatch(r: SessionRouter, frames: Buffer[]): RouteOutcome {
  return r.route(
    frames.map((f) => f[0]),
    frames,
  );
}

/** The SQL text of a Query or Parse frame. */
function sqlOf(frame: Buffer): string {
  if (frame[0] === Frontend.Query) return frame.toString('utf8', 5, frame.length - 1);
  const nameEnd = frame.indexOf(0, 5);
  return frame.toString('utf8', nameEnd + 1, frame.indexOf(0, nameEnd + 1));
}

describe('fan-out SELECTs that the shards run rewritten', () => {
  it('simple protocol: the Query carries the shard statement; the spec merges avg from sum and the hidden count', () => {
    const target = routeBatch(router(), [
      query('SELECT country, avg(age) FROM users GROUP BY country ORDER BY 2 DESC'),
    ]);
    expect(target.kind).toBe('split');
    const split = target as Split;
    expect(split.shards).toEqual([0, 1]);
    expect(split.parts[0].frames.map(sqlOf)).toEqual([
      'SELECT country, pg_catalog.sum(age * 1) AS avg, pg_catalog.count(age) AS "shardgate.hidden.1" FROM users ' +
        'GROUP BY country ORDER BY 2 DESC',
    ]);
    expect(split.spec).toMatchObject({
      groupBy: [0],
      aggregates: [{ column: 1, fn: 'avg', countColumn: 2 }],
      orderBy: [{ column: 1, isDescending: true, isNullsFirst: true }],
      hiddenCount: 1,
    });
  });

  it('extended protocol: binds the HAVING parameters, declared types included, and keeps the Bind parameters', () => {
    const sql =
      'SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > $1 AND min(name) <> $2';
    const target = routeBatch(router(), [
      parse('', sql, [TypeOid.int8]),
      bind('', ['3', 'x']),
      describeMessage('P', ''),
      EXECUTE,
      SYNC,
    ]) as Split;
    expect(target.kind).toBe('split');
    expect(sqlOf(target.parts[0].frames[0])).toBe(
      'SELECT country, count(*), min(name) AS "shardgate.hidden.1" FROM users GROUP BY country ' +
        'HAVING (count(*) > $1 AND min(name) <> $2) OR true',
    );
    expect(readBind(target.parts[0].frames[1]).values.map(String)).toEqual(['3', 'x']);
    expect(target.spec.having).toEqual({
      kind: 'and',
      args: [
        {
          kind: 'compare',
          op: '>',
          left: { kind: 'column', column: 1 },
          right: { kind: 'constant', value: Buffer.from('3'), format: 0, typeOid: TypeOid.int8 },
        },
        {
          kind: 'compare',
          op: '<>',
          left: { kind: 'column', column: 2 },
          right: { kind: 'constant', value: Buffer.from('x'), format: 0, typeOid: 0 },
        },
      ],
    });
  });

  it('rounds a numeric constant cast to an integer type, as PostgreSQL does', () => {
    const target = routeBatch(router(), [
      query('SELECT country FROM users GROUP BY country HAVING count(*) <> 2.5::int'),
    ]) as Split;
    expect(target.spec.having).toMatchObject({
      right: { kind: 'constant', value: Buffer.from('3'), typeOid: TypeOid.int4 },
    });
  });

  it('extends per-column result formats to the hidden columns (text); one format for all stays as it is', () => {
    const sql = 'SELECT id, name FROM users ORDER BY created_at LIMIT 5';
    const perColumn = routeBatch(router(), [parse('', sql), bind('', [], [1, 0]), EXECUTE, SYNC]) as Split;
    expect(readBind(perColumn.parts[0].frames[1]).resultFormats).toEqual(
      Buffer.from([0, 3, 0, 1, 0, 0, 0, 0]),
    );
    const single = routeBatch(router(), [parse('', sql), bind('', [], [1]), EXECUTE, SYNC]) as Split;
    expect(readBind(single.parts[0].frames[1]).resultFormats).toEqual(Buffer.from([0, 1, 0, 1]));
    expect(perColumn.spec).toMatchObject({
      orderBy: [{ column: 2, isDescending: false, isNullsFirst: false }],
      limit: 5,
      hiddenCount: 1,
    });
  });

  it('points a Describe of the statement at the rewritten one, parsed before it', () => {
    const r = router();
    const sql = 'SELECT avg(age) FROM users';
    const target = routeBatch(r, [
      parse('s1', sql),
      describeMessage('S', 's1'),
      bind('s1', []),
      EXECUTE,
      SYNC,
    ]) as Split;
    const frames = target.parts[0].frames;
    expect(frames[0][0]).toBe(Frontend.Parse);
    expect(sqlOf(frames[0])).toMatch(/^SELECT pg_catalog\.sum\(age \* 1\) AS avg/);
    expect(frames[1]).toEqual(describeMessage('S', ''));
    // The statement was prepared in an earlier request: the rewritten one is parsed in this one, before the Describe.
    const kinds = (t: Split): string => t.parts[0].frames.map((f) => String.fromCharCode(f[0])).join('');
    const before = routeBatch(r, [describeMessage('S', 's1'), bind('s1', []), EXECUTE, SYNC]) as Split;
    expect(before.parts[0].isParseInjected).toBe(true);
    expect(kinds(before)).toBe('PDBES');
    expect(before.parts[0].frames[1]).toEqual(describeMessage('S', ''));
    const after = routeBatch(r, [bind('s1', []), describeMessage('S', 's1'), EXECUTE, SYNC]) as Split;
    expect(kinds(after)).toBe('PBDES');
    expect(after.parts[0].frames[2]).toEqual(describeMessage('S', ''));
  });

  it('a SELECT * sorted on a hidden column counts it from the end of the row', () => {
    const target = routeBatch(router(), [query('SELECT * FROM users ORDER BY created_at DESC, id')]) as Split;
    expect(target.spec.orderBy).toEqual([
      { column: -2, isDescending: true, isNullsFirst: true },
      { column: -1, isDescending: false, isNullsFirst: false },
    ]);
    expect(target.spec.hiddenCount).toBe(2);
  });

  it('runs the client’s own text when the key pins one shard', () => {
    const target = routeBatch(router(), [query('SELECT avg(total) FROM orders WHERE user_id = 7')]);
    expect(target.kind).toBe('one');
  });
});

describe('set operations across shards', () => {
  type Many = Extract<BatchTarget, { kind: 'many' }>;

  it('UNION ALL: the shards run the client’s text, their rows are concatenated (merge-sorted with ORDER BY)', () => {
    const plain = routeBatch(router(), [query('SELECT id FROM users UNION ALL SELECT user_id FROM orders')]);
    expect(plain.kind).toBe('many');
    expect((plain as Many).spec).toMatchObject({ orderBy: [], limit: null, offset: 0, aggregates: null });
    expect((plain as Many).spec.groupBy).toBeUndefined();
    const sorted = routeBatch(router(), [
      query(
        'SELECT id, email FROM users UNION ALL SELECT user_id, note FROM orders ORDER BY email DESC, 1 LIMIT 4',
      ),
    ]) as Many;
    expect(sorted.kind).toBe('many');
    expect(sorted.spec).toMatchObject({
      orderBy: [
        { column: 1, isDescending: true, isNullsFirst: true },
        { column: 0, isDescending: false, isNullsFirst: false },
      ],
      limit: 4,
      offset: 0,
      aggregates: null,
    });
  });

  it('UNION: rows are grouped by every output column (de-duplicated across shards), then ordered and limited', () => {
    const target = routeBatch(router(), [
      query('SELECT id, email FROM users UNION SELECT user_id, note FROM orders ORDER BY 2 LIMIT 10'),
    ]) as Many;
    expect(target.kind).toBe('many');
    expect(target.spec).toMatchObject({ groupBy: [0, 1], aggregates: [], limit: 10, offset: 0 });
    expect(target.spec.orderBy).toEqual([{ column: 1, isDescending: false, isNullsFirst: false }]);
  });

  it('OFFSET: the shards run LIMIT limit + offset (simple and extended, parameters and binary results)', () => {
    const simple = routeBatch(router(), [
      query('SELECT email FROM users UNION SELECT note FROM orders ORDER BY 1 LIMIT 5 OFFSET 10'),
    ]) as Split;
    expect(simple.kind).toBe('split');
    expect(simple.parts[0].frames.map(sqlOf)).toEqual([
      'SELECT email FROM users UNION SELECT note FROM orders  ORDER BY 1 LIMIT CAST(5 AS bigint) + CAST(10 AS bigint)',
    ]);
    expect(simple.spec).toMatchObject({ groupBy: [0], limit: 5, offset: 10 });

    const sql =
      'SELECT id FROM users WHERE age > $1 UNION ALL SELECT user_id FROM orders ORDER BY 1 LIMIT $2 OFFSET $3';
    const extended = routeBatch(router(), [
      parse('', sql),
      bind('', ['30', '2', '3'], [1]),
      EXECUTE,
      SYNC,
    ]) as Split;
    expect(extended.kind).toBe('split');
    expect(extended.shards).toEqual([0, 1]);
    const frames = extended.parts[0].frames;
    expect(sqlOf(frames[0])).toBe(
      'SELECT id FROM users WHERE age > $1 UNION ALL SELECT user_id FROM orders  ORDER BY 1 LIMIT CAST($2 AS bigint) + CAST($3 AS bigint)',
    );
    const shardBind = readBind(frames[1]);
    expect(shardBind.values.map(String)).toEqual(['30', '2', '3']);
    expect(shardBind.resultFormats).toEqual(Buffer.from([0, 1, 0, 1])); // binary results, as the client asked
    expect(extended.spec).toMatchObject({ limit: 2, offset: 3, aggregates: null });
    expect(extended.spec.orderBy).toEqual([{ column: 0, isDescending: false, isNullsFirst: false }]);
  });

  it('a set operation pinned to one shard runs there as written', () => {
    const pinned = routeBatch(router(), [
      query('SELECT id FROM users WHERE id = 7 INTERSECT SELECT user_id FROM orders WHERE user_id = 7'),
    ]);
    expect(pinned.kind).toBe('one');
    expect(
      routeBatch(router(), [
        parse('', 'SELECT id FROM users WHERE id = $1 UNION SELECT 0'),
        bind('', ['7']),
        EXECUTE,
        SYNC,
      ]).kind,
    ).toBe('one');
  });

  it('refuses with 0A000 what it cannot answer exactly', () => {
    const r = router();
    /** The error routing `sql` throws: its SQLSTATE and message. */
    const refusal = (sql: string): { code: string; message: string } => {
      try {
        routeBatch(r, [query(sql)]);
      } catch (err) {
        const e = err as { code: string; message: string };
        return { code: e.code, message: e.message };
      }
      throw new Error(`routed without an error: ${sql}`);
    };
    for (const [sql, message] of [
      ['SELECT id FROM users INTERSECT SELECT user_id FROM orders', /^INTERSECT needs every shard/],
      ['SELECT id FROM users EXCEPT SELECT user_id FROM orders', /^EXCEPT needs every shard/],
      ['SELECT email FROM users UNION ALL SELECT name FROM countries', /reads no sharded table/],
      ['SELECT * FROM users UNION SELECT * FROM users', /no \*/],
      ['SELECT * FROM users UNION ALL SELECT * FROM users ORDER BY id', /must name output columns/],
    ] as const) {
      expect(refusal(sql)).toMatchObject({
        code: '0A000',
        message: expect.stringMatching(message) as unknown,
      });
    }
  });
});

describe('DISTINCT and ordered aggregates across shards', () => {
  it("the sharding key's count(DISTINCT …) runs as the client wrote it; the counts add up", () => {
    const target = routeBatch(router(), [
      query('SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User"'),
    ]);
    expect(target.kind).toBe('many');
    expect((target as Extract<BatchTarget, { kind: 'many' }>).spec).toMatchObject({
      aggregates: [{ column: 0, fn: 'count' }],
    });
  });

  it('other DISTINCT values without GROUP BY: a grand total over the sub-groups the shards return', () => {
    const split = routeBatch(router(), [
      query('SELECT count(DISTINCT country), avg(DISTINCT age), count(*) FROM users'),
    ]) as Split;
    expect(split.kind).toBe('split');
    expect(split.parts[0].frames.map(sqlOf)).toEqual([
      'SELECT count(country) FILTER (WHERE false), avg(age) FILTER (WHERE false), count(*), ' +
        'country AS "shardgate.hidden.1", age AS "shardgate.hidden.2" FROM users GROUP BY 4, 5',
    ]);
    expect(split.spec).toMatchObject({
      groupBy: [],
      isGrandTotal: true,
      hiddenCount: 2,
      aggregates: [
        { column: 0, fn: 'count', distinctColumn: 3 },
        { column: 1, fn: 'avg', distinctColumn: 4 },
        { column: 2, fn: 'count' },
      ],
    });
  });

  it("string_agg's delimiter parameter comes from the Bind; array_agg's values take its column's result format", () => {
    const sql =
      'SELECT country, string_agg(name, $1 ORDER BY id), array_agg(age ORDER BY id DESC) FROM users GROUP BY country';
    const split = routeBatch(router(), [
      parse('', sql),
      bind('', [' | '], [0, 0, 1]),
      EXECUTE,
      SYNC,
    ]) as Split;
    expect(split.spec.aggregates).toEqual([
      {
        column: 1,
        fn: 'string_agg',
        ordered: {
          valuesColumn: 3,
          keys: [{ column: 4, isDescending: false, isNullsFirst: false }],
          delimiter: Buffer.from(' | '),
        },
      },
      {
        column: 2,
        fn: 'array_agg',
        ordered: {
          valuesColumn: 5,
          keys: [{ column: 6, isDescending: true, isNullsFirst: true }],
          delimiter: null,
        },
      },
    ]);
    // Hidden columns: name[], id[] (text), age[] (binary, as column 3), id[] (text).
    expect(readBind(split.parts[0].frames[1]).resultFormats).toEqual(
      Buffer.from([0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]),
    );
  });
});

describe('detours: what routing cannot run as routed yet is a result, not an exception', () => {
  const onShard = (shard: number): number => {
    for (let id = 1; ; id++)
      if (shardForLiteral(SCHEMA.shardedColumns[0], 2, String(id)) === shard) return id;
  };

  it('statements of one Query on different shards: mixed, with the 0A000 to answer when no script can run them', () => {
    const outcome = routeBatch(router(), [
      query(`select * from users where id = ${onShard(0)}; select * from users where id = ${onShard(1)}`),
    ]);
    expect(outcome.kind).toBe('mixed');
    const error = (outcome as Extract<RouteOutcome, { kind: 'mixed' }>).error;
    expect([error.code, error.message]).toEqual([
      '0A000',
      'statements in one request (up to Sync) go to different shards; send them separately',
    ]);
  });

  it('a second statement that needs several shards: mixed', () => {
    const outcome = routeBatch(router(), [
      query(`select * from users where id = ${onShard(0)}; select count(*) from users`),
    ]);
    expect(outcome).toMatchObject({
      kind: 'mixed',
      error: {
        message: 'statements in one request (up to Sync) go to different shards; send them separately',
      },
    });
  });

  it('an INSERT without a column list into a sharded table, after a statement on one shard: learn its columns first', () => {
    const outcome = routeBatch(router(), [
      query(`select * from users where id = ${onShard(1)}; insert into users values (1, 'a')`),
    ]);
    expect(outcome).toEqual({ kind: 'learn', need: { kind: 'tableColumns', table: 'users' } });
  });
});

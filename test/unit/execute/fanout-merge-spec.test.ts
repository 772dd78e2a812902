// The merge spec of a fan-out statement built from its plan and Bind parameters (execute/fanout-merge-spec.ts):
// LIMIT / OFFSET values (literals, text and binary parameters), ORDER BY keys, DISTINCT and UNION as grouping, the
// shapes refused, COPY TO's header, and the text collation a merge that orders needs. Plans from the real analyser; no
// sockets.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  copyOutSpec,
  countValue,
  mergeSpecFor,
  withTextCollation,
} from '../../../src/execute/fanout-merge-spec.js';
import { PASS_THROUGH_SPEC } from '../../../src/execute/merge-spec.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import type { BindParams } from '../../../src/router/bind-params.js';
import { initParser } from '../../../src/router/parser.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

function plan(sql: string): StatementPlan {
  return analyzeQuery(sql, SCHEMA)[0];
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

function int(n: number, bytes: 4 | 8): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 4) b.writeInt32BE(n);
  else b.writeBigInt64BE(BigInt(n));
  return b;
}

describe('countValue', () => {
  const p1 = { kind: 'param', index: 1 } as const;
  it('reads literals and text or binary parameters; none, NULL and ALL mean no limit', () => {
    expect(countValue(null, null)).toBeNull();
    expect(countValue({ kind: 'literal', value: '10' }, null)).toBe(10);
    expect(countValue({ kind: 'literal', value: 'all' }, null)).toBeNull();
    const params = (value: Buffer | null, format: 0 | 1): BindParams => ({
      values: [value],
      formats: [format],
    });
    expect(countValue(p1, params(Buffer.from('7'), 0))).toBe(7);
    expect(countValue(p1, params(null, 0))).toBeNull();
    expect(countValue(p1, params(int(3, 4), 1))).toBe(3);
    expect(countValue(p1, params(int(2 ** 40, 8), 1))).toBe(2 ** 40);
    expect(countValue(p1, null)).toBeNull();
  });

  it('refuses (0A000) a binary parameter of another size, a negative or a non-integer count', () => {
    expect(errorOf(() => countValue(p1, { values: [Buffer.alloc(2)], formats: [1] })).code).toBe('0A000');
    expect(errorOf(() => countValue({ kind: 'literal', value: '-1' }, null)).message).toBe(
      'cannot merge a LIMIT/OFFSET of "-1" across shards',
    );
    expect(errorOf(() => countValue(p1, { values: [Buffer.from('1.5')], formats: [0] })).code).toBe('0A000');
  });
});

describe('mergeSpecFor', () => {
  it('passes through what is not a SELECT', () => {
    expect(mergeSpecFor(null, null, null)).toBe(PASS_THROUGH_SPEC);
    expect(mergeSpecFor(plan('UPDATE users SET name = 1'), null, null)).toBe(PASS_THROUGH_SPEC);
  });

  it('turns ORDER BY, LIMIT and OFFSET into keys on output columns and counts', () => {
    const spec = mergeSpecFor(
      plan('SELECT id, name FROM users ORDER BY name DESC, 1 LIMIT $1 OFFSET 2'),
      {
        values: [Buffer.from('5')],
        formats: [0],
      },
      null,
    );
    expect(spec).toEqual({
      orderBy: [
        { column: 1, isDescending: true, isNullsFirst: true },
        { column: 0, isDescending: false, isNullsFirst: false },
      ],
      limit: 5,
      offset: 2,
      aggregates: null,
    });
  });

  it('merges DISTINCT and UNION by grouping on every output column; UNION ALL concatenates', () => {
    expect(mergeSpecFor(plan('SELECT DISTINCT name, email FROM users'), null, null)).toMatchObject({
      groupBy: [0, 1],
      aggregates: [],
    });
    expect(
      mergeSpecFor(plan('SELECT name FROM users UNION SELECT name FROM orders'), null, null),
    ).toMatchObject({ groupBy: [0], aggregates: [] });
    expect(
      mergeSpecFor(plan('SELECT name FROM users UNION ALL SELECT name FROM orders'), null, null),
    ).toEqual({ orderBy: [], limit: null, offset: 0, aggregates: null });
  });

  it('refuses what the merger cannot answer exactly (0A000)', () => {
    const refused = (sql: string): string => errorOf(() => mergeSpecFor(plan(sql), null, null)).message;
    expect(refused('SELECT name FROM users INTERSECT SELECT name FROM orders')).toBe(
      "INTERSECT across shards needs every shard's rows in one place",
    );
    expect(refused('SELECT DISTINCT * FROM users')).toMatch(
      /^SELECT DISTINCT across shards needs plain output/,
    );
    expect(refused('SELECT count(*) FROM users OFFSET 1')).toBe(
      'OFFSET with aggregates across shards is not supported yet',
    );
  });
});

describe('copyOutSpec and withTextCollation', () => {
  it('marks COPY TO with HEADER, and nothing else', () => {
    const header = plan('COPY users TO STDOUT WITH (FORMAT csv, HEADER)');
    expect(copyOutSpec(header, PASS_THROUGH_SPEC)).toEqual({ ...PASS_THROUGH_SPEC, copyOutHeader: true });
    expect(copyOutSpec(plan('COPY users TO STDOUT'), PASS_THROUGH_SPEC)).toBe(PASS_THROUGH_SPEC);
  });

  it('adds the collation only to a merge that orders or aggregates', () => {
    const ordered = {
      ...PASS_THROUGH_SPEC,
      orderBy: [{ column: 0, isDescending: false, isNullsFirst: false }],
    };
    expect(withTextCollation(ordered, 'en_US.utf8')).toEqual({ ...ordered, textCollation: 'en_US.utf8' });
    expect(withTextCollation(ordered, null)).toBe(ordered);
    expect(withTextCollation(PASS_THROUGH_SPEC, 'en_US.utf8')).toBe(PASS_THROUGH_SPEC);
  });
});

// Literal normalization of simple-protocol queries (router/literals.ts): which literals become parameters, what is
// left alone (comments, typed and prefixed strings, backslashes, $n, exponents, several statements), and that the
// routes a session takes from the normalized plan are the raw text's routes, for thousands of keys.
import { beforeAll, describe, expect, it } from 'vitest';
import { literalCount, literalValue, normalizedText } from '../../../src/router/literals.js';
import { SessionRouter } from '../../../src/frontend/session-router.js';
import type { BatchTarget } from '../../../src/frontend/batch-target.js';
import { query } from '../../../src/protocol/messages.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

/** The normalized text with every literal's value, read as the session router reads them (null: left alone). */
function normalizeLiterals(sql: string): { text: string; values: string[] } | null {
  const text = normalizedText(sql);
  if (text === null) return null;
  return { text, values: Array.from({ length: literalCount() }, (_, k) => literalValue(k)) };
}

describe('normalizedText and its literals', () => {
  it('makes integers, decimals and plain strings in value positions parameters', () => {
    expect(normalizeLiterals('SELECT abalance FROM pgbench_accounts WHERE aid = 12345;')).toEqual({
      text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
      values: ['12345'],
    });
    expect(
      normalizeLiterals("update t set a = a + -3.50, b = 'it''s' where id in (1,2) and x = '5'::int"),
    ).toEqual({
      text: 'update t set a = a + -$1, b = $2 where id in ($3,$4) and x = $5::int',
      values: ['3.50', "it's", '1', '2', '5'],
    });
  });

  it('leaves identifiers with digits, quoted names and keywords alone', () => {
    expect(normalizeLiterals('select t1.c2 from "t 3" t1 where t1.id = 7')).toEqual({
      text: 'select t1.c2 from "t 3" t1 where t1.id = $1',
      values: ['7'],
    });
    expect(normalizeLiterals('select * from users')).toBeNull(); // nothing to replace
  });

  it('gives up (null) on what it does not fully understand', () => {
    for (const sql of [
      'select 1 /* shardgate: shard=1 */',
      'select 1 -- comment',
      "select * from t where ts > interval '1 day'", // typed literal
      "select * from t where name like 'a%'", // after a keyword
      "select E'a\\nb'",
      "select * from t where s = 'a\\'b'", // backslash: depends on standard_conforming_strings
      "select * from t where s = U&'d\\0061t'",
      'select * from t where id = $1',
      'select $$x$$',
      'select 1e5',
      'select 1; select 2',
      "select * from t where s = 'unterminated",
    ]) {
      expect(normalizeLiterals(sql), sql).toBeNull();
    }
  });
});

describe('normalizedText with literalCount / literalValue (the hot path: no values array)', () => {
  it('gives the text and the values, each value made only when asked for', () => {
    const sql = "update t set a = a + -3.50, b = 'it''s', c = '''' where id in (1,2) and x = '5'::int";
    expect(normalizedText(sql)).toBe(
      'update t set a = a + -$1, b = $2, c = $3 where id in ($4,$5) and x = $6::int',
    );
    expect(literalCount()).toBe(6);
    expect(Array.from({ length: 6 }, (_, k) => literalValue(k))).toEqual([
      '3.50',
      "it's",
      "'",
      '1',
      '2',
      '5',
    ]);
    expect(() => literalValue(6)).toThrow(RangeError);
    expect(normalizeLiterals(sql)?.values).toEqual(['3.50', "it's", "'", '1', '2', '5']);
    // A text it gives up on, or one without literals, leaves no literals behind.
    expect(normalizedText('select 1 -- comment')).toBeNull();
    expect(literalCount()).toBe(0);
    expect(normalizedText('select 2')).toBe('select $1');
    expect(normalizedText('select * from users')).toBeNull();
    expect(literalCount()).toBe(0);
  });

  it('replaces at most 64 literals', () => {
    const list = (n: number): string =>
      `select * from t where id in (${Array.from({ length: n }, (_, i) => i).join(',')})`;
    expect(normalizedText(list(64))).toContain('$64)');
    expect(literalValue(63)).toBe('63');
    expect(normalizedText(list(65))).toBeNull();
  });
});

describe('SessionRouter routing simple Queries by their normalized plan', () => {
  const routing = (literalPlans?: PlanCache<StatementPlan | null>) => ({
    schema: SCHEMA,
    plans: new PlanCache(),
    literalPlans,
    nextReadShard: () => 0,
    textCollation: null,
  });
  const route = (r: SessionRouter, sql: string): BatchTarget =>
    r.route([Frontend.Query], [query(sql)]) as BatchTarget; // none of these takes a detour

  it('routes every key to the shard the raw text routes it to, with one plan for them all', () => {
    const literalPlans = new PlanCache<StatementPlan | null>();
    const normalized = new SessionRouter(routing(literalPlans));
    const raw = new SessionRouter(routing());
    for (let id = -50; id < 3000; id += 7) {
      for (const sql of [
        `select name from users where id = ${id}`,
        `update pgbench_accounts set abalance = abalance + 5 where aid = ${Math.abs(id)}`,
        `insert into orders (user_id, note) values (${id}, 'n ${id}')`,
      ]) {
        const a = route(normalized, sql);
        const b = route(raw, sql);
        expect(a.kind === 'one' ? a.shard : a.kind, sql).toEqual(b.kind === 'one' ? b.shard : b.kind);
        expect([a.mayWrite, a.isWrite]).toEqual([b.mayWrite, b.isWrite]);
      }
    }
    // The three shapes, and the two with `-$1` for a negative key (not pinned by it: the raw text's plan routes those).
    expect(literalPlans.size).toBe(5);
  });

  it('leaves fan-outs, splits and refusals to the raw text’s plan', () => {
    const r = new SessionRouter(routing(new PlanCache<StatementPlan | null>()));
    expect(route(r, 'select count(*) from users where name = $$x$$').kind).toBe('many');
    expect(route(r, "select name from users where name = 'x' order by 1 limit 5").kind).not.toBe('one');
    const rows = Array.from({ length: 8 }, (_, i) => `(${i + 1}, 'u')`).join(', ');
    expect(route(r, `insert into users (id, name) values ${rows}`).kind).toBe('split');
    expect(() =>
      route(r, 'select * from users a join orders b on a.name = b.note where b.note = 1'),
    ).toThrow();
  });
});

// A session's prepared statements as routing needs them (frontend/prepared-plans.ts): Parse remembered by name and
// found again by a Bind, Close forgetting it, a malformed name refused, SQL-level PREPARE / DEALLOCATE / DISCARD ALL,
// an EXECUTE's arguments bound to the prepared statement's parameters, and which statement a request runs. No sockets.
import { beforeAll, describe, expect, it } from 'vitest';
import { PreparedPlans } from '../../../src/frontend/prepared-plans.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { closeStatement, query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

function parse(name: string, sql: string, types: number[] = []): Buffer {
  const w = new MessageWriter().cstring(name).cstring(sql).int16(types.length);
  for (const t of types) w.int32(t);
  return w.frame(Frontend.Parse);
}

function bind(statement: string, params: string[] = []): Buffer {
  const w = new MessageWriter().cstring('').cstring(statement).int16(0).int16(params.length);
  for (const p of params) w.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  return w.int16(0).frame(Frontend.Bind);
}

function plansFor(sql: string): readonly StatementPlan[] {
  return analyzeQuery(sql, SCHEMA);
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

describe('protocol-level statements', () => {
  it('finds a Bind’s statement as the Parse left it, named or unnamed, until a Close', () => {
    const prepared = new PreparedPlans(plansFor);
    prepared.noteParse(parse('', 'SELECT * FROM users WHERE id = $1', [20]));
    prepared.noteParse(parse('s1', 'SELECT 1'));
    expect(prepared.bound(bind(''))).toMatchObject({
      text: 'SELECT * FROM users WHERE id = $1',
      paramTypes: [20],
    });
    expect(prepared.bound(bind('s1'))?.plans).toHaveLength(1);
    expect(prepared.bound(bind('s2'))).toBeNull();
    prepared.noteClose(closeStatement('s1'));
    expect(prepared.bound(bind('s1'))).toBeNull();
    prepared.noteClose(closeStatement(''));
    expect(prepared.bound(bind(''))?.text).toBe('SELECT * FROM users WHERE id = $1'); // as before the split
  });
  it('finds the last Bind’s named statement again without a lookup, until a Parse or Close changes the names', () => {
    const prepared = new PreparedPlans(plansFor);
    prepared.noteParse(parse('s1', 'SELECT 1'));
    prepared.noteParse(parse('s10', 'SELECT 10'));
    prepared.noteParse(parse('sé', 'SELECT 2'));
    expect(prepared.bound(bind('s1'))?.text).toBe('SELECT 1');
    expect(prepared.bound(bind('s1'))?.text).toBe('SELECT 1');
    expect(prepared.bound(bind('s10'))?.text).toBe('SELECT 10'); // a longer name with the same start
    expect(prepared.bound(bind('s'))).toBeNull();
    expect(prepared.bound(bind('sé'))?.text).toBe('SELECT 2'); // non-ASCII: decoded each time
    expect(prepared.bound(bind('sé'))?.text).toBe('SELECT 2');
    expect(prepared.bound(bind('s1'))?.text).toBe('SELECT 1');
    prepared.noteParse(parse('s1', 'SELECT 3')); // PostgreSQL refuses this (42P05); the router follows the Parse
    expect(prepared.bound(bind('s1'))?.text).toBe('SELECT 3');
    prepared.noteClose(closeStatement('s1'));
    expect(prepared.bound(bind('s1'))).toBeNull();
    expect(errorOf(() => prepared.bound(bind('s10').subarray(0, 8))).code).toBe('08P01');
  });

  it('refuses several statements in one Parse (42601) and names without their NUL (08P01)', () => {
    const prepared = new PreparedPlans(plansFor);
    expect(errorOf(() => prepared.noteParse(parse('', 'SELECT 1; SELECT 2'))).code).toBe('42601');
    const unterminated = Buffer.from([Frontend.Bind, 0, 0, 0, 7, 0x70, 0, 0x73]);
    expect(errorOf(() => prepared.bound(unterminated)).code).toBe('08P01');
    const parseWithoutText = Buffer.from([Frontend.Parse, 0, 0, 0, 6, 0x73, 0]);
    expect(errorOf(() => prepared.noteParse(parseWithoutText)).code).toBe('08P01');
  });
});

describe('SQL-level statements and EXECUTE', () => {
  const execute = (sql: string): StatementPlan => plansFor(sql)[0];

  it('binds EXECUTE’s constants and parameters to the prepared statement; unknown until PREPARE', () => {
    const prepared = new PreparedPlans(plansFor);
    expect(prepared.bindExecute(execute('EXECUTE q(7)'), null)).toBeNull();
    prepared.noteStatement(execute('PREPARE q (bigint) AS SELECT * FROM users WHERE id = $1'));
    const bound = prepared.bindExecute(execute('EXECUTE q(7)'), null);
    expect(bound?.plan.kind).toBe('select');
    expect(bound?.params).toEqual({ values: [Buffer.from('7')], formats: [0] });
    const viaBind = prepared.bindExecute(execute('EXECUTE q($1)'), {
      values: [Buffer.from('9')],
      formats: [0],
    });
    expect(viaBind?.params).toEqual({ values: [Buffer.from('9')], formats: [0] });
  });

  it('refuses (0A000) an expression where the argument decides the shard', () => {
    const prepared = new PreparedPlans(plansFor);
    prepared.noteStatement(execute('PREPARE q (bigint) AS SELECT * FROM users WHERE id = $1'));
    expect(errorOf(() => prepared.bindExecute(execute('EXECUTE q(1 + 1)'), null)).message).toBe(
      'EXECUTE q: argument 1 decides where the statement runs, but it is an expression shardgate cannot evaluate',
    );
  });

  it('forgets on DEALLOCATE, DEALLOCATE ALL and DISCARD ALL', () => {
    const prepared = new PreparedPlans(plansFor);
    const prepareBoth = (): void => {
      prepared.noteStatement(execute('PREPARE a AS SELECT 1'));
      prepared.noteStatement(execute('PREPARE b AS SELECT 2'));
    };
    const known = (name: string): boolean => prepared.bindExecute(execute(`EXECUTE ${name}`), null) !== null;
    prepareBoth();
    prepared.noteStatement(execute('DEALLOCATE a'));
    expect([known('a'), known('b')]).toEqual([false, true]);
    prepareBoth();
    prepared.noteStatement(execute('DEALLOCATE ALL'));
    expect([known('a'), known('b')]).toEqual([false, false]);
    prepareBoth();
    prepared.noteStatement(execute('DISCARD ALL'));
    expect([known('a'), known('b')]).toEqual([false, false]);
  });
});

describe('requestStatement', () => {
  it('is a Query’s text, or the statement a Bind binds, with where its Parse and Bind sit', () => {
    const prepared = new PreparedPlans(plansFor);
    expect(prepared.requestStatement([Frontend.Query], [query('SELECT 1')])).toMatchObject({
      text: 'SELECT 1',
      isQuery: true,
    });
    const frames = [parse('', 'INSERT INTO users (id) VALUES ($1)', [20]), bind('', ['1'])];
    expect(prepared.requestStatement([Frontend.Parse, Frontend.Bind], frames)).toEqual({
      text: 'INSERT INTO users (id) VALUES ($1)',
      paramTypes: [20],
      isQuery: false,
      parseIndex: 0,
      bindIndex: 1,
      paramCount: 1,
    });
    prepared.noteParse(parse('ins', 'INSERT INTO users (id, name) VALUES ($1, $2)'));
    expect(prepared.requestStatement([Frontend.Bind], [bind('ins', ['1', 'x'])])).toMatchObject({
      text: 'INSERT INTO users (id, name) VALUES ($1, $2)',
      parseIndex: -1,
      bindIndex: 0,
      paramCount: 2,
    });
    expect(prepared.requestStatement([Frontend.Bind], [bind('unknown')])).toBeNull();
  });
});

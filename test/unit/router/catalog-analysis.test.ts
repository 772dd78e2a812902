// Catalog facts from a shard's answers: views (through other views) over sharded tables, temporary relations, and
// functions that may write — with their bodies read to tell whether shardgate can see where a call must run.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { functionFacts, relationFacts, type RelationRow } from '../../../src/router/catalog-analysis.js';
import { initParser } from '../../../src/router/parser.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

const row = (key: string, relkind: string | null, base: string | null, persistence = 'p'): RelationRow => ({
  key,
  relkind,
  relpersistence: relkind === null ? null : persistence,
  baseSchema: base === null ? null : 'public',
  baseName: base,
});

describe('relationFacts', () => {
  it('a view reads sharded tables when any base table it reaches is sharded', () => {
    const facts = relationFacts(
      ['v', 'w', 'notes', 'gone', 'tmp'],
      [
        row('v', 'v', 'countries'),
        row('v', 'v', 'users'),
        row('w', 'm', 'countries'),
        row('notes', 'r', 'notes'),
        row('gone', null, null),
        row('tmp', 'r', 'tmp', 't'),
      ],
      SCHEMA,
    );
    expect(facts.get('v')).toEqual({ relkind: 'v', isTemporary: false, readsSharded: true });
    expect(facts.get('w')?.readsSharded).toBe(false);
    expect(facts.get('notes')).toEqual({ relkind: 'r', isTemporary: false, readsSharded: false });
    expect(facts.get('gone')).toEqual({ relkind: null, isTemporary: false, readsSharded: false });
    expect(facts.get('tmp')?.isTemporary).toBe(true);
  });
});

describe('functionFacts', () => {
  const analyze = (sql: string) => analyzeQuery(sql, SCHEMA);
  const fn = (
    name: string,
    language: string,
    source: string,
    definition = '',
  ): Parameters<typeof functionFacts>[1][number] => ({
    name,
    language,
    source,
    definition,
  });

  it('no writing overload: does not write', () => {
    expect(functionFacts(['lower'], [], analyze).get('lower')).toEqual({
      mayWrite: false,
      opaqueReason: null,
    });
  });

  it('reads SQL and PL/pgSQL bodies: copied tables are fine, a sharded table or dynamic SQL makes it opaque', () => {
    const facts = functionFacts(
      ['note_it', 'add_user', 'dyn', 'c_fn'],
      [
        fn('note_it', 'sql', 'insert into countries values ($1) returning 1'),
        fn(
          'add_user',
          'plpgsql',
          '',
          `CREATE FUNCTION add_user(i bigint) RETURNS void LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO users (id) VALUES (i); END $$`,
        ),
        fn(
          'dyn',
          'plpgsql',
          '',
          `CREATE FUNCTION dyn(t text) RETURNS void LANGUAGE plpgsql AS $$
          BEGIN EXECUTE 'DELETE FROM ' || t; END $$`,
        ),
        fn('c_fn', 'c', 'c_fn'),
      ],
      analyze,
    );
    expect(facts.get('note_it')).toEqual({ mayWrite: true, opaqueReason: null });
    expect(facts.get('add_user')?.opaqueReason).toContain('sharded table users');
    expect(facts.get('dyn')?.opaqueReason).toContain('run time');
    expect(facts.get('c_fn')?.opaqueReason).toContain('written in c');
  });
});

// The session state replayed on servers: SETs and SQL-level prepared statements, what each statement changes in it,
// and the SQL that brings a server's copy in line (RESET / DEALLOCATE what it has extra, SET / PREPARE what it lacks).
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import {
  applySettingChange,
  SessionSettings,
  settingChange,
  settingsSyncSql,
} from '../../../src/frontend/session-settings.js';

beforeAll(async () => {
  await initParser();
});

/** The state after running `statements` one by one on an empty session. */
function stateAfter(...statements: string[]): Map<string, string> {
  const state = new Map<string, string>();
  for (const sql of statements) {
    const change = settingChange(analyzeQuery(sql, null)[0]);
    if (change !== null) applySettingChange(state, change);
  }
  return state;
}

describe('session state changes', () => {
  it('keeps SETs and PREPAREs; RESET ALL clears the settings only, DEALLOCATE ALL the statements only', () => {
    const prepare = 'PREPARE q (int) AS SELECT $1';
    expect([...stateAfter('SET search_path = a', prepare).values()]).toEqual([
      'SET search_path = a',
      prepare,
    ]);
    expect([...stateAfter('SET search_path = a', prepare, 'RESET ALL').values()]).toEqual([prepare]);
    expect([...stateAfter('SET search_path = a', prepare, 'DEALLOCATE ALL').values()]).toEqual([
      'SET search_path = a',
    ]);
    expect(stateAfter('SET search_path = a', prepare, 'DISCARD ALL').size).toBe(0);
    expect(stateAfter(prepare, 'DEALLOCATE PREPARE q').size).toBe(0);
    expect(stateAfter('SET LOCAL search_path = a', 'SET TRANSACTION READ ONLY').size).toBe(0);
  });

  it('brings a server in line: DEALLOCATE a statement it has extra or under another text, PREPARE what it lacks', () => {
    const want = stateAfter('SET work_mem = 1', 'PREPARE mine AS SELECT 1', 'PREPARE same AS SELECT 3');
    const have = stateAfter(
      'SET statement_timeout = 5',
      'PREPARE "Other" AS SELECT 2',
      'PREPARE same AS SELECT 4',
    );
    expect(settingsSyncSql(want, have)).toBe(
      'RESET statement_timeout;DEALLOCATE "Other";DEALLOCATE "same";' +
        'SET work_mem = 1\n;PREPARE mine AS SELECT 1\n;PREPARE same AS SELECT 3\n;',
    );
    expect(settingsSyncSql(want, want)).toBe('');
  });

  it('returns a reset setting to the startup value, not to the server default (RESET, RESET ALL, DISCARD ALL)', () => {
    const base = new Map([['search_path', "SELECT pg_catalog.set_config(E'search_path', E'app', false)"]]);
    const run = (...statements: string[]): Map<string, string> => {
      const state = new Map(base);
      for (const sql of statements) {
        const change = settingChange(analyzeQuery(sql, null)[0]);
        if (change !== null) applySettingChange(state, change, base);
      }
      return state;
    };
    expect([...run('SET search_path = other').values()]).toEqual(['SET search_path = other']);
    expect(run('SET search_path = other', 'RESET search_path')).toEqual(base);
    expect(run('SET search_path = other', 'SET work_mem = 1', 'RESET ALL')).toEqual(base);
    expect(run('SET search_path = other', 'PREPARE p AS SELECT 1', 'DISCARD ALL')).toEqual(base);
    expect([...run('PREPARE p AS SELECT 1', 'DEALLOCATE ALL').keys()]).toEqual(['search_path']);
    expect(run('SET work_mem = 1', 'RESET work_mem')).toEqual(base);
  });
});

describe('SessionSettings (the session’s copy)', () => {
  const plan = (sql: string) => analyzeQuery(sql, null)[0];

  it('starts as the startup settings; a request’s changes hold only once applied', () => {
    const startup = new Map([['search_path', "SELECT set_config('search_path', 'a', false)"]]);
    const settings = new SessionSettings(startup);
    expect(settings.current).toEqual(startup);
    settings.note(plan('SET work_mem = 1024'));
    settings.note(plan('SELECT 1')); // changes nothing
    expect(settings.current.has('work_mem')).toBe(false);
    const changes = settings.takePending();
    expect(changes).toEqual([{ name: 'work_mem', text: 'SET work_mem = 1024' }]);
    expect(settings.takePending()).toEqual([]);
    expect(settings.apply(changes)).toBe(changes);
    expect(settings.current.get('work_mem')).toBe('SET work_mem = 1024');
  });

  it('drops a failed request’s changes, and RESET ALL returns to the startup settings', () => {
    const startup = new Map([['search_path', 'SET search_path = a']]);
    const settings = new SessionSettings(startup);
    settings.note(plan('SET work_mem = 1024'));
    settings.dropPending();
    expect(settings.takePending()).toEqual([]);
    settings.apply([{ name: 'search_path', text: 'SET search_path = b' }]);
    settings.note(plan('RESET ALL'));
    settings.apply(settings.takePending());
    expect(settings.current).toEqual(startup);
  });
});

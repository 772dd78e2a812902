// settings-truth.ts: which request texts may change session state (the byte scan that runs on every one-shard
// request), the custom setting names read from them, and the server's answer turned into replayable statements.
import { describe, expect, it } from 'vitest';
import { Frontend } from '../../../src/protocol/codes.js';
import { parseMessage, query } from '../../../src/protocol/messages.js';
import {
  customSettingNames,
  mayChangeSettings,
  settingsFromRows,
  settingsTruthSql,
  textMayChangeSettings,
} from '../../../src/frontend/settings-truth.js';

/** A Parse frame with no parameter types. */
function parse(name: string, sql: string): Buffer {
  return parseMessage(name, sql, new Uint8Array([0, 0]));
}

function changes(sql: string): boolean {
  const b = Buffer.from(sql);
  return textMayChangeSettings(b, 0, b.length);
}

describe('textMayChangeSettings', () => {
  it.each([
    'SET work_mem = 1',
    'set app.tenant = 42',
    '  -- a comment\n  Reset all',
    '/* hint */ DISCARD ALL',
    'deallocate all',
    'PREPARE p AS SELECT 1',
    'select 1; set search_path = x',
    "select set_config('app.tenant', '1', false)",
    "SELECT pg_catalog.SET_CONFIG('a.b', 'c', false)",
    '(SET x = 1)',
    '/* a /* nested */ comment */ SET x = 1', // PostgreSQL's block comments nest
  ])('%s: yes', (sql) => expect(changes(sql)).toBe(true));

  it.each([
    'select 1',
    'update t set x = 1 where id = 2',
    'insert into settings values (1)',
    'select offset_config from t',
    'select reset_count from t',
    'settle', // a word that starts like SET
    'discarded',
    'set_x', // `_` continues the word
    "select my_set_config('a.b', 'c')",
    '',
  ])('%s: no', (sql) => expect(changes(sql)).toBe(false));

  it('reads Query and Parse texts among a request’s frames, nothing else', () => {
    const q = query('SET x.y = 1');
    const p = parse('', 'set a.b = 2');
    const sel = query('select 1');
    expect(mayChangeSettings([Frontend.Query], [q], 1)).toBe(true);
    expect(mayChangeSettings([Frontend.Parse], [p], 1)).toBe(true);
    expect(mayChangeSettings([Frontend.Query], [sel], 1)).toBe(false);
    expect(mayChangeSettings([Frontend.Sync], [q], 1)).toBe(false); // not a text frame
  });
});

describe('customSettingNames', () => {
  it('collects dotted names from SET, RESET and set_config, lower case', () => {
    const names = new Set<string>();
    customSettingNames(
      [Frontend.Query, Frontend.Parse],
      [
        query('SET App.Tenant = \'1\'; reset my.other; set session "x"."y" to 2; set work_mem = 1'),
        parse('s1', "select set_config('rls.user', $1, false), set_config('plain', 'v', false)"),
      ],
      names,
    );
    expect([...names].sort()).toEqual(['app.tenant', 'my.other', 'rls.user', 'x.y']);
  });
});

describe('settingsFromRows / settingsTruthSql', () => {
  it('replays session settings by set_config, prepared statements by their text; reported parameters are not replayed', () => {
    const got = settingsFromRows([
      ['work_mem', '79872'],
      ['DateStyle', 'ISO, MDY'],
      ['role', 'reader'],
      [' mine', 'PREPARE mine AS SELECT 1'],
      ['app.tenant', '42'],
    ]);
    expect([...got.keys()]).toEqual(['work_mem', 'role', 'prepared statement mine', 'app.tenant']);
    expect(got.get('work_mem')).toBe("SELECT pg_catalog.set_config(E'work_mem', E'79872', false)");
    expect(got.get('prepared statement mine')).toBe('PREPARE mine AS SELECT 1');
  });

  it('asks for custom settings by name only when there are some', () => {
    expect(settingsTruthSql(new Set())).not.toContain('unnest');
    expect(settingsTruthSql(new Set(["a.b'c"]))).toContain("unnest(ARRAY[E'a.b''c'])");
  });
});

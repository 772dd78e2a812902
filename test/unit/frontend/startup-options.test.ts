// The startup packet's settings as PostgreSQL reads them: `options` split like pg_split_opts and read like
// process_postgres_switches, then the other parameters in packet order.
import { describe, expect, it } from 'vitest';
import {
  readOptions,
  readStartupSettings,
  setConfigSql,
  splitOptions,
} from '../../../src/frontend/startup-options.js';

describe('splitOptions (pg_split_opts)', () => {
  it('splits on any whitespace and lets a backslash take the next character literally', () => {
    expect(splitOptions('  -c a=1\t--b=2\n')).toEqual(['-c', 'a=1', '--b=2']);
    expect(splitOptions('-c search_path=a,\\ b')).toEqual(['-c', 'search_path=a, b']);
    expect(splitOptions('-c x=a\\\\b')).toEqual(['-c', 'x=a\\b']);
    expect(splitOptions('-c x=\\')).toEqual(['-c', 'x=']);
    expect(splitOptions('')).toEqual([]);
  });
});

describe('readOptions (process_postgres_switches from a client)', () => {
  it('reads -c name=value, -cname=value and --name=value (dashes in the name become underscores)', () => {
    expect(readOptions('-c search_path=app -cwork_mem=8MB --statement-timeout=5s --x.y=a=b')).toEqual({
      settings: [
        { name: 'search_path', value: 'app' },
        { name: 'work_mem', value: '8MB' },
        { name: 'statement_timeout', value: '5s' },
        { name: 'x.y', value: 'a=b' },
      ],
      error: null,
    });
  });

  it('maps the one-letter switches that stand for a setting, grouped or not', () => {
    expect(readOptions('-e -fs -tpa -S 1MB -d 2').settings).toEqual([
      { name: 'datestyle', value: 'euro' },
      { name: 'enable_seqscan', value: 'false' },
      { name: 'log_parser_stats', value: 'true' },
      { name: 'work_mem', value: '1MB' },
      { name: 'log_min_messages', value: 'debug2' },
      { name: 'log_statement', value: 'all' },
    ]);
    expect(readOptions('-eB 10').settings).toEqual([
      { name: 'datestyle', value: 'euro' },
      { name: 'shared_buffers', value: '10' },
    ]);
    expect(readOptions('-b -E -j -n -T -C x -D /tmp -r out -v 3')).toEqual({ settings: [], error: null });
  });

  it('refuses what PostgreSQL refuses, with its messages, keeping the settings it applies first', () => {
    const missing = readOptions('-c a=1 -c foo -c b=2');
    expect(missing.settings).toEqual([{ name: 'a', value: '1' }]);
    expect(missing.error?.code).toBe('42601');
    expect(missing.error?.severity).toBe('FATAL');
    expect(missing.error?.message).toBe('-c foo requires a value');
    expect(readOptions('--foo-bar').error?.message).toBe('--foo-bar requires a value');
    const unknown = readOptions('-x');
    expect(unknown.error?.message).toBe('invalid command-line argument for server process: -x');
    expect(unknown.error?.hint).toBe('Try "postgres --help" for more information.');
    expect(readOptions('-c').error?.message).toBe('invalid command-line argument for server process: -c');
    expect(readOptions('-fz').error?.message).toBe('invalid command-line argument for server process: -fz');
  });

  it('applies every switch before refusing a word that is not one (glibc getopt sets them aside)', () => {
    const r = readOptions('stray -c a=1 -- -c b=2');
    expect(r.settings).toEqual([{ name: 'a', value: '1' }]);
    expect(r.error?.message).toBe('invalid command-line argument for server process: stray');
    expect(readOptions('-c a=1 -- more').error?.message).toBe(
      'invalid command-line argument for server process: more',
    );
    expect(readOptions('-c a=1 --').error).toBeNull();
  });
});

describe('readStartupSettings', () => {
  it('takes options first, then every other parameter in packet order, without protocol options', () => {
    const r = readStartupSettings(
      new Map([
        ['user', 'app'],
        ['database', 'app'],
        ['application_name', 'x'],
        ['options', '-c search_path=s'],
        ['replication', 'false'],
        ['_pq_.foo', '1'],
        ['some.var', 'v'],
      ]),
    );
    expect(r).toEqual({
      settings: [
        { name: 'search_path', value: 's' },
        { name: 'application_name', value: 'x' },
        { name: 'some.var', value: 'v' },
      ],
      error: null,
    });
  });

  it('stops at a refused switch', () => {
    const r = readStartupSettings(
      new Map([
        ['options', '-x'],
        ['a', '1'],
      ]),
    );
    expect(r.settings).toEqual([]);
    expect(r.error?.code).toBe('42601');
  });
});

describe('setConfigSql', () => {
  it('quotes names and values so that any text reaches set_config unchanged', () => {
    expect(setConfigSql('x.y', "it's a \\ path")).toBe(
      "SELECT pg_catalog.set_config(E'x.y', E'it''s a \\\\ path', false)",
    );
  });
});

// SessionParams: which parameters follow a client from server to server, and the SET that aligns a server.
import { describe, expect, it } from 'vitest';
import { SessionParams } from '../../../src/frontend/session-params.js';

describe('SessionParams', () => {
  it('takes tracked startup parameters case-insensitively, the others as set_config statements', () => {
    const p = new SessionParams();
    p.fromStartup([
      { name: 'APPLICATION_NAME', value: 'app' },
      { name: 'datestyle', value: 'ISO, DMY' },
      { name: 'Search_Path', value: 'a, "B"' },
      { name: 'statement_timeout', value: '5s' },
      { name: 'statement_timeout', value: '6s' },
    ]);
    expect(p.wantedEntries()).toEqual([
      ['DateStyle', 'ISO, DMY'],
      ['application_name', 'app'],
    ]);
    expect([...p.settings]).toEqual([
      ['search_path', `SELECT pg_catalog.set_config(E'Search_Path', E'a, "B"', false)`],
      ['statement_timeout', `SELECT pg_catalog.set_config(E'statement_timeout', E'6s', false)`],
    ]);
  });

  it("takes the server's spelling of the startup values it reported, and reports the others' at login", () => {
    const p = new SessionParams();
    p.fromStartup([
      { name: 'datestyle', value: 'iso,dmy' },
      { name: 'default_transaction_read_only', value: 'yes' },
    ]);
    p.noteReported(
      new Map([
        ['DateStyle', 'ISO, DMY'],
        ['default_transaction_read_only', 'on'],
      ]),
    );
    const server = new Map([
      ['DateStyle', 'ISO, MDY'],
      ['default_transaction_read_only', 'off'],
      ['TimeZone', 'UTC'],
    ]);
    expect(p.loginStatus(server)).toEqual([
      ['DateStyle', 'ISO, DMY'],
      ['default_transaction_read_only', 'on'],
      ['TimeZone', 'UTC'],
    ]);
    const inStep = new Map([
      ['DateStyle', 'ISO, DMY'],
      ['default_transaction_read_only', 'on'],
      ['TimeZone', 'UTC'],
    ]);
    expect(p.syncSql(inStep)).toBe('');
    // default_transaction_read_only is tracked (reported since PostgreSQL 14): a server with another value gets a SET.
    expect(p.syncSql(server)).toBe("SET DateStyle TO 'ISO, DMY';SET default_transaction_read_only TO 'on';");
    expect(p.isDefaultReadOnly).toBe(true);
  });

  it('reports server values at login with the client choices on top, then needs no SET for an equal server', () => {
    const p = new SessionParams();
    p.fromStartup([{ name: 'application_name', value: 'mine' }]);
    const server = new Map([
      ['application_name', ''],
      ['TimeZone', 'UTC'],
      ['server_version', '15.18'],
    ]);
    expect(p.loginStatus(server)).toEqual([
      ['application_name', 'mine'],
      ['TimeZone', 'UTC'],
      ['server_version', '15.18'],
    ]);
    expect(
      p.syncSql(
        new Map([
          ['application_name', 'mine'],
          ['TimeZone', 'UTC'],
        ]),
      ),
    ).toBe('');
    expect(p.syncSql(server)).toBe("SET application_name TO 'mine';");
  });

  it("follows the client's own SETs and quotes values safely", () => {
    const p = new SessionParams();
    p.noteStatus('TimeZone', "Europe/O'Town");
    p.noteStatus('server_version', 'ignored');
    expect(p.syncSql(new Map([['TimeZone', 'UTC']]))).toBe("SET TimeZone TO 'Europe/O''Town';");
  });

  it('sees a changed wanted value at the next sync', () => {
    const p = new SessionParams();
    const server = new Map([
      ['TimeZone', 'UTC'],
      ['application_name', 'a'],
    ]);
    p.noteStatus('TimeZone', 'UTC');
    expect(p.syncSql(server)).toBe('');
    p.noteStatus('application_name', 'b');
    expect(p.syncSql(server)).toBe("SET application_name TO 'b';");
    p.noteStatus('TimeZone', 'Asia/Tokyo');
    expect(p.syncSql(server)).toBe("SET TimeZone TO 'Asia/Tokyo';SET application_name TO 'b';");
    p.noteStatus('TimeZone', 'Asia/Tokyo'); // the same again
    p.noteStatus('application_name', 'a');
    expect(p.syncSql(server)).toBe("SET TimeZone TO 'Asia/Tokyo';");
  });

  it('keeps no map of its own for a client without startup settings (idle-client memory)', () => {
    const a = new SessionParams();
    const b = new SessionParams();
    a.fromStartup([{ name: 'application_name', value: 'x' }]);
    expect(a.settings).toBe(b.settings); // the one shared empty map
    expect(a.settings.size).toBe(0);
    a.fromStartup([{ name: 'search_path', value: 's' }]);
    expect(a.settings).not.toBe(b.settings);
    expect(b.settings.size).toBe(0);
    expect(a.wantedValue('application_name')).toBe('x');
    expect(a.wantedValue('TimeZone')).toBeUndefined();
  });
});

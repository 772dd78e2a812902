// SessionParams: which parameters follow a client from server to server, and the SET that aligns a server.
import { describe, expect, it } from 'vitest';
import { SessionParams } from '../../../src/frontend/session-params.js';

describe('SessionParams', () => {
  it('takes tracked startup parameters case-insensitively and ignores others', () => {
    const p = new SessionParams();
    p.fromStartup(
      new Map([
        ['APPLICATION_NAME', 'app'],
        ['datestyle', 'ISO, DMY'],
        ['search_path', 'x'],
      ]),
    );
    expect([...p.wanted]).toEqual([
      ['application_name', 'app'],
      ['DateStyle', 'ISO, DMY'],
    ]);
  });

  it('reports server values at login with the client choices on top, then needs no SET for an equal server', () => {
    const p = new SessionParams();
    p.fromStartup(new Map([['application_name', 'mine']]));
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
});

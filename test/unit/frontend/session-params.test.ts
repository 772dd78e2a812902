// SessionParams: which parameters follow a client from server to server, and the SET that aligns a server.
import { describe, expect, it } from 'vitest';
import { SessionParams } from '../../../src/frontend/session-params.js';
import { parameterStatus } from '../../../src/protocol/messages.js';

/** The login frames as they were built before they were shared: one ParameterStatus message per pair. */
function framesOf(pairs: [string, string][]): Buffer {
  return Buffer.concat(pairs.map(([k, v]) => parameterStatus(k, v)));
}

const SERVER = new Map([
  ['application_name', ''],
  ['DateStyle', 'ISO, MDY'],
  ['TimeZone', 'UTC'],
  ['server_version', '15.18'],
]);

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

  it("builds the login frames as one message per value, the client's choices on top", () => {
    for (const startup of [
      [],
      [{ name: 'application_name', value: 'app' }],
      [
        { name: 'datestyle', value: 'iso,dmy' },
        { name: 'TimeZone', value: 'Europe/Zürich' },
      ],
    ]) {
      const reference = new SessionParams();
      reference.fromStartup(startup);
      const p = new SessionParams();
      p.fromStartup(startup);
      for (const isFrozen of [true, false]) {
        expect(p.loginFrames(SERVER, isFrozen)).toEqual(framesOf(reference.loginStatus(SERVER)));
      }
      // The server's values of what the client did not choose became its wanted ones, as with loginStatus.
      expect(p.syncSql(SERVER)).toBe(reference.syncSql(SERVER));
      expect(p.wantedValue('TimeZone')).toBe(reference.wantedValue('TimeZone'));
    }
  });

  it('shares the login frames of a frozen map between clients told the same values, not between others', () => {
    const login = (
      startup: { name: string; value: string }[],
      server: Map<string, string>,
      isFrozen = true,
    ) => {
      const p = new SessionParams();
      p.fromStartup(startup);
      return p.loginFrames(server, isFrozen);
    };
    const plain = login([], SERVER);
    expect(login([], SERVER)).toBe(plain);
    // A choice equal to the server's value is no choice: the same frames.
    expect(login([{ name: 'TimeZone', value: 'UTC' }], SERVER)).toBe(plain);
    const app = login([{ name: 'application_name', value: 'app' }], SERVER);
    expect(app).not.toBe(plain);
    expect(login([{ name: 'application_name', value: 'app' }], SERVER)).toBe(app);
    expect(login([{ name: 'application_name', value: 'other' }], SERVER)).not.toEqual(app);
    // A map that is not frozen (a replication client's own server) is never shared.
    const own = login([], SERVER, false);
    expect(own).toEqual(plain);
    expect(own).not.toBe(plain);
    // New server values come as a new map (the pool replaces it): new frames, with the new values.
    const changed = new Map(SERVER).set('TimeZone', 'Asia/Tokyo');
    const after = login([], changed);
    expect(after).not.toEqual(plain);
    expect(after).toEqual(framesOf([...changed]));
    expect(login([], SERVER)).toBe(plain); // the old map's frames are the old map's
  });
});

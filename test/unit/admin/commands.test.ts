// The admin command parser and result-set encoding: case, spaces and semicolons; typed columns; NULLs.
import { describe, expect, it } from 'vitest';
import { ADMIN_COMMANDS, parseAdminQuery } from '../../../src/admin/commands.js';
import { cellText, cols, encodeResultSet } from '../../../src/admin/result-set.js';

describe('parseAdminQuery', () => {
  it('accepts every command in any case, with extra spaces and a trailing semicolon', () => {
    for (const command of ADMIN_COMMANDS) {
      expect(parseAdminQuery(`  ${command.toLowerCase().replace(' ', '   ')} ;`)).toEqual([
        { kind: 'command', command },
      ]);
    }
  });

  it('splits statements on semicolons and drops empty ones', () => {
    expect(parseAdminQuery('show pools; ;SHOW STATS')).toEqual([
      { kind: 'command', command: 'SHOW POOLS' },
      { kind: 'command', command: 'SHOW STATS' },
    ]);
    expect(parseAdminQuery(' ; ')).toEqual([]);
  });

  it('BAN, UNBAN and HEALTHCHECK take an optional pool id (as PgDog); other arguments are unknown', () => {
    expect(parseAdminQuery('ban 12; unban;HEALTHCHECK  3')).toEqual([
      { kind: 'command', command: 'BAN', poolId: 12 },
      { kind: 'command', command: 'UNBAN' },
      { kind: 'command', command: 'HEALTHCHECK', poolId: 3 },
    ]);
    expect(parseAdminQuery('BAN app 0')).toEqual([{ kind: 'unknown', text: 'BAN app 0' }]);
    expect(parseAdminQuery('SHOW BANS 1')).toEqual([{ kind: 'unknown', text: 'SHOW BANS 1' }]);
  });

  it('returns anything else as unknown, as written', () => {
    expect(parseAdminQuery('SHOW POOLS extra')).toEqual([{ kind: 'unknown', text: 'SHOW POOLS extra' }]);
    expect(parseAdminQuery('select 1')).toEqual([{ kind: 'unknown', text: 'select 1' }]);
  });
});

describe('encodeResultSet', () => {
  it('writes RowDescription with type OIDs, DataRows in text (NULL as -1), CommandComplete', () => {
    const buf = encodeResultSet({
      columns: cols({ name: 'text', n: 'int8', avg: 'numeric', ok: 'bool' }),
      rows: [
        ['a', 3, 1.23456, true],
        [null, 4.6, 0, false],
      ],
    });
    expect(String.fromCharCode(buf[0])).toBe('T');
    const tLen = buf.readInt32BE(1);
    expect(buf.readInt16BE(5)).toBe(4);
    const oids: number[] = [];
    let p = 7;
    for (let i = 0; i < 4; i++) {
      p = buf.indexOf(0, p) + 1;
      oids.push(buf.readInt32BE(p + 6));
      p += 18;
    }
    expect(oids).toEqual([25, 20, 1700, 16]);
    const rest = buf.subarray(1 + tLen);
    expect(String.fromCharCode(rest[0])).toBe('D');
    expect(rest.toString('latin1')).toContain('1.235');
    const second = rest.subarray(1 + rest.readInt32BE(1));
    expect(second.readInt32BE(7)).toBe(-1); // NULL
    expect(buf.subarray(buf.length - 10).toString('latin1')).toContain('SHOW\0');
  });

  it('renders cells as their column type holds them', () => {
    expect(cellText('int8', 4.6)).toBe('5');
    expect(cellText('numeric', 0.0004)).toBe('0');
    expect(cellText('numeric', 12.3456)).toBe('12.346');
    expect(cellText('bool', false)).toBe('f');
    expect(cellText('text', null)).toBeNull();
  });
});

// Fields of the client's messages (protocol/frontend-fields.ts): the lenient readers the session uses to look names up
// (an unterminated name runs to the end of the frame; the server judges the message), and the checked ones the router
// reads statements through (an unterminated string is 08P01 before anything is routed).
import { describe, expect, it } from 'vitest';
import {
  bindStatement,
  checkedBindStatement,
  closedStatement,
  describedTarget,
  parseStatement,
  parseText,
  queryText,
} from '../../../src/protocol/frontend-fields.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { closeStatement, query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';

function errorOf(fn: () => unknown): PgError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

/** A frame of `type` whose body is `body` as given (no NUL added). */
function raw(type: number, body: string): Buffer {
  const b = Buffer.from(body, 'latin1');
  const frame = Buffer.alloc(5 + b.length);
  frame[0] = type;
  frame.writeInt32BE(4 + b.length, 1);
  b.copy(frame, 5);
  return frame;
}

describe('checked readers', () => {
  it('read a Query’s text, a Parse’s name and text, a Bind’s statement, a Close’s statement', () => {
    expect(queryText(query('SELECT 1'))).toBe('SELECT 1');
    const parse = new MessageWriter().cstring('s1').cstring('SELECT $1').int16(0).frame(Frontend.Parse);
    expect(parseStatement(parse)).toBe('s1');
    expect(parseText(parse)).toBe('SELECT $1');
    const bind = new MessageWriter()
      .cstring('p')
      .cstring('s1')
      .int16(0)
      .int16(0)
      .int16(0)
      .frame(Frontend.Bind);
    expect(checkedBindStatement(bind)).toBe('s1');
    expect(closedStatement(closeStatement('s1'))).toBe('s1');
    expect(closedStatement(closeStatement(''))).toBe('');
    expect(closedStatement(raw(Frontend.Close, 'Pportal\0'))).toBeNull();
  });

  it('refuse a string without its NUL (ERROR 08P01, as PostgreSQL), where the lenient ones read to the end', () => {
    const bind = raw(Frontend.Bind, 'p\0stmt');
    expect(bindStatement(bind)).toBe('stmt');
    expect(errorOf(() => checkedBindStatement(bind)).code).toBe('08P01');
    expect(errorOf(() => queryText(raw(Frontend.Query, 'SELECT 1')))).toMatchObject({
      severity: 'ERROR',
      message: 'invalid string in message',
    });
    expect(errorOf(() => parseText(raw(Frontend.Parse, 's\0SELECT 1'))).code).toBe('08P01');
    expect(errorOf(() => parseStatement(raw(Frontend.Parse, 's'))).code).toBe('08P01');
    const close = raw(Frontend.Close, 'Sname');
    expect(describedTarget(close)).toEqual({ isPortal: false, name: 'name' });
    expect(errorOf(() => closedStatement(close)).code).toBe('08P01');
  });
});

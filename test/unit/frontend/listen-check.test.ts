// LISTEN recognised at the start of a Query or Parse (the single-shard path reads no more than that).
import { describe, expect, it } from 'vitest';
import { Frontend } from '../../../src/protocol/codes.js';
import { parseMessage, query } from '../../../src/protocol/messages.js';
import { startsWithListen } from '../../../src/frontend/listen-check.js';

const isListenQuery = (sql: string): boolean => startsWithListen(Frontend.Query, query(sql));

describe('startsWithListen', () => {
  it('sees LISTEN in any case, after whitespace and comments, in Query and Parse', () => {
    expect(isListenQuery('LISTEN chan')).toBe(true);
    expect(isListenQuery('listen "chan"')).toBe(true);
    expect(isListenQuery(' \n\t Listen chan;')).toBe(true);
    expect(isListenQuery('-- wait\nlisten chan')).toBe(true);
    expect(isListenQuery('/* a /* nested */ comment */listen chan')).toBe(true);
    expect(isListenQuery('listen')).toBe(true);
    expect(startsWithListen(Frontend.Parse, parseMessage('s1', 'listen x', new Uint8Array(2)))).toBe(true);
  });

  it('leaves other statements alone', () => {
    expect(isListenQuery('UNLISTEN chan')).toBe(false);
    expect(isListenQuery('listener')).toBe(false);
    expect(isListenQuery('listen_x')).toBe(false);
    expect(isListenQuery("select 'listen'")).toBe(false);
    expect(isListenQuery('-- listen\nselect 1')).toBe(false);
    expect(isListenQuery('/* unterminated listen')).toBe(false);
    expect(isListenQuery('')).toBe(false);
    expect(startsWithListen(Frontend.Parse, parseMessage('', 'select 1', new Uint8Array(2)))).toBe(false);
  });
});

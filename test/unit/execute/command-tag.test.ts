// Unit tests for command-tag: parsing CommandComplete tags and combining one tag per shard into the client's.
import { describe, expect, it } from 'vitest';
import {
  combineCommandTags,
  commandComplete,
  parseCommandTag,
  parseCommandTagText,
} from '../../../src/execute/command-tag.js';

const parse = (tags: string[]) => tags.map(parseCommandTagText);

describe('parseCommandTag', () => {
  it('reads counted and plain tags', () => {
    expect(parseCommandTagText('INSERT 0 12')).toEqual({
      text: 'INSERT 0 12',
      command: 'INSERT',
      oid: '0',
      rows: 12n,
    });
    expect(parseCommandTagText('SELECT 18446744073709551615')).toMatchObject({ rows: 18446744073709551615n });
    expect(parseCommandTagText('CREATE TABLE')).toEqual({
      text: 'CREATE TABLE',
      command: 'CREATE TABLE',
      oid: null,
      rows: null,
    });
    expect(parseCommandTagText('SELECT')).toMatchObject({ rows: null }); // not counted without a number
  });

  it('round-trips through a CommandComplete frame', () => {
    expect(parseCommandTag(commandComplete('UPDATE 3'))).toMatchObject({ command: 'UPDATE', rows: 3n });
  });
});

describe('combineCommandTags', () => {
  it('sums counted tags; SELECT/FETCH report the rows sent when rows were returned', () => {
    expect(combineCommandTags(parse(['INSERT 0 1', 'INSERT 0 2']), null)).toBe('INSERT 0 3');
    expect(combineCommandTags(parse(['DELETE 1', 'DELETE 2']), 7)).toBe('DELETE 3');
    expect(combineCommandTags(parse(['SELECT 10', 'SELECT 10']), 5)).toBe('SELECT 5');
    expect(combineCommandTags(parse(['SELECT 10', 'SELECT 10']), null)).toBe('SELECT 20');
    expect(combineCommandTags(parse(['FETCH 2', 'FETCH 3']), 5)).toBe('FETCH 5');
  });

  it('plain tags must match; mixed commands do not combine', () => {
    expect(combineCommandTags(parse(['BEGIN', 'BEGIN']), null)).toBe('BEGIN');
    expect(combineCommandTags(parse(['BEGIN', 'COMMIT']), null)).toBeNull();
    expect(combineCommandTags(parse(['UPDATE 1', 'DELETE 1']), null)).toBeNull();
    expect(combineCommandTags(parse(['UPDATE 1', 'SET']), null)).toBeNull();
    expect(combineCommandTags([], null)).toBeNull();
  });
});

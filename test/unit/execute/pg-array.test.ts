// Unit tests for pg-array: one-dimensional arrays in array_out text (quoting and escapes as PostgreSQL writes them)
// and array_send binary, read and written back; multi-dimensional arrays refused.
import { describe, expect, it } from 'vitest';
import {
  elementTypeOf,
  readArray,
  readBinaryArray,
  readTextArray,
  writeBinaryArray,
  writeTextArray,
} from '../../../src/execute/pg-array.js';
import { Format, TypeOid } from '../../../src/execute/value-compare.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const texts = (elements: (Buffer | null)[]): (string | null)[] =>
  elements.map((e) => (e === null ? null : e.toString('utf8')));

describe('text arrays (array_out)', () => {
  it('reads plain, quoted and escaped elements; NULL only when unquoted', () => {
    // SELECT array_agg(x) FROM (VALUES ('a b'), (NULL), ('NULL'), ('x"y'), (''), ('c\\d'), ('Zoë'), ('{}'))
    const out = readTextArray(b('{"a b",NULL,"NULL","x\\"y","","c\\\\d",Zoë,"{}"}'));
    expect(texts(out)).toEqual(['a b', null, 'NULL', 'x"y', '', 'c\\d', 'Zoë', '{}']);
  });

  it('reads numbers, an empty array and a dimension decoration', () => {
    expect(texts(readTextArray(b('{1,-2.50,NaN}')))).toEqual(['1', '-2.50', 'NaN']);
    expect(readTextArray(b('{}'))).toEqual([]);
    expect(texts(readTextArray(b('[0:1]={7,8}')))).toEqual(['7', '8']);
  });

  it('writes what array_out writes: quotes where it quotes, escapes quotes and backslashes', () => {
    const elements = [
      'a b',
      null,
      'NULL',
      'null',
      'x"y',
      '',
      'c\\d',
      'Zoë',
      '{}',
      'a,b',
      'tab\there',
      'plain',
    ];
    const written = writeTextArray(elements.map((e) => (e === null ? null : b(e)))).toString('utf8');
    expect(written).toBe('{"a b",NULL,"NULL","null","x\\"y","","c\\\\d",Zoë,"{}","a,b","tab\there",plain}');
    expect(texts(readTextArray(b(written)))).toEqual(elements);
  });

  it('refuses arrays of arrays and rejects malformed text', () => {
    expect(() => readTextArray(b('{{1,2},{3,4}}'))).toThrow(/array_agg of arrays/);
    expect(() => readTextArray(b('{"a'))).toThrow(/malformed/);
    expect(() => readTextArray(b('1,2'))).toThrow(/malformed/);
  });
});

describe('binary arrays (array_send)', () => {
  it('round-trips elements, NULLs and the element type', () => {
    const elements = [Buffer.from([0, 0, 0, 1]), null, Buffer.from([0xff, 0xff, 0xff, 0xfe])];
    const bytes = writeBinaryArray(elements, TypeOid.int4);
    expect(bytes.readInt32BE(0)).toBe(1); // dimensions
    expect(bytes.readInt32BE(4)).toBe(1); // has NULLs
    expect(bytes.readUInt32BE(8)).toBe(TypeOid.int4);
    expect(bytes.readInt32BE(12)).toBe(3); // length
    expect(bytes.readInt32BE(16)).toBe(1); // lower bound
    const read = readBinaryArray(bytes);
    expect(read.elementOid).toBe(TypeOid.int4);
    expect(read.elements).toEqual(elements);
    expect(readArray(bytes, Format.Binary).elements).toEqual(elements);
  });

  it('reads an empty array and refuses two dimensions', () => {
    const empty = Buffer.alloc(12);
    empty.writeUInt32BE(TypeOid.text, 8);
    expect(readBinaryArray(empty)).toEqual({ elements: [], elementOid: TypeOid.text });
    const twoDims = Buffer.alloc(28);
    twoDims.writeInt32BE(2, 0);
    expect(() => readBinaryArray(twoDims)).toThrow(/array_agg of arrays/);
  });
});

describe('element types', () => {
  it('knows the built-in array types', () => {
    expect(elementTypeOf(1016)).toBe(TypeOid.int8);
    expect(elementTypeOf(1009)).toBe(TypeOid.text);
    expect(elementTypeOf(1185)).toBe(TypeOid.timestamptz);
    expect(elementTypeOf(99999)).toBeNull();
  });
});

// CopyRowRouter: COPY FROM data cut into rows and routed by key, whatever the chunking, in text, CSV and binary.
import { describe, expect, it } from 'vitest';
import { CopyRowRouter, type CopyDataFormat } from '../../../src/execute/copy-rows.js';
import { PgError } from '../../../src/errors/pg-error.js';

const TEXT: CopyDataFormat = {
  format: 'text',
  delimiter: '\t',
  quote: '"',
  escape: '"',
  nullText: '\\N',
  header: false,
};
const CSV: CopyDataFormat = {
  format: 'csv',
  delimiter: ',',
  quote: '"',
  escape: '"',
  nullText: '',
  header: false,
};
const BINARY: CopyDataFormat = { ...TEXT, format: 'binary' };

/** Keys are decimal integers (binary: int8); shard = key mod 2; NULL → shard 0. */
const parity = (key: Buffer | null, isBinary: boolean): number => {
  if (key === null) return 0;
  if (isBinary) return Number(key.readBigInt64BE(0) % 2n);
  const text = key.toString();
  if (!/^-?\d+$/.test(text))
    throw new PgError('ERROR', '22P02', `invalid input syntax for type bigint: "${text}"`);
  return Math.abs(Number(text)) % 2;
};

/** Feed `data` in pieces cut at `cuts`, end, and return what each shard got as strings (latin1). */
function route(fmt: CopyDataFormat, keyIndex: number | null, data: Buffer, cuts: number[] = []): string[] {
  const r = new CopyRowRouter(fmt, keyIndex, 2, parity);
  const got: Buffer[][] = [[], []];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    r.push(data.subarray(from, cut));
    from = cut;
    r.take().forEach((list, shard) => got[shard].push(...list));
  }
  r.end();
  r.take().forEach((list, shard) => got[shard].push(...list));
  return got.map((list) => Buffer.concat(list).toString('latin1'));
}

/** route() at every single cut point gives the same answer as unchunked. */
function expectChunkingInvariant(fmt: CopyDataFormat, keyIndex: number | null, data: Buffer): string[] {
  const whole = route(fmt, keyIndex, data);
  for (let cut = 1; cut < data.length; cut++)
    expect(route(fmt, keyIndex, data, [cut]), `cut at ${cut}`).toEqual(whole);
  return whole;
}

describe('CopyRowRouter, text format', () => {
  it('routes rows by the key column, passing row bytes on unchanged, at any chunking', () => {
    const data = Buffer.from('1\ta\n2\tb\n3\tc\\\td\n4\te\\\nf\n');
    expect(expectChunkingInvariant(TEXT, 0, data)).toEqual(['2\tb\n4\te\\\nf\n', '1\ta\n3\tc\\\td\n']);
  });

  it('reads the key from any column, de-escaped, and the NULL marker as NULL', () => {
    const data = Buffer.from('a\t\\061\nb\t\\x32\nc\t\\N\nd\t7\n');
    expect(expectChunkingInvariant(TEXT, 1, data)).toEqual(['b\t\\x32\nc\t\\N\n', 'a\t\\061\nd\t7\n']);
  });

  it('handles CRLF line ends, a last row without a line end, and the \\. end marker', () => {
    expect(route(TEXT, 0, Buffer.from('1\tx\r\n2\ty\r\n3\tz'))).toEqual(['2\ty\r\n', '1\tx\r\n3\tz']);
    expect(route(TEXT, 0, Buffer.from('1\tx\n\\.\n2\tignored\n'))).toEqual(['\\.\n', '1\tx\n\\.\n']);
  });

  it('sends the HEADER line to every shard', () => {
    expect(route({ ...TEXT, header: true }, 0, Buffer.from('id\tname\n1\ta\n2\tb\n'))).toEqual([
      'id\tname\n2\tb\n',
      'id\tname\n1\ta\n',
    ]);
  });

  it('sends every row to every shard without a key column (copied tables)', () => {
    expect(route(TEXT, null, Buffer.from('1\ta\n2\tb\n'))).toEqual(['1\ta\n2\tb\n', '1\ta\n2\tb\n']);
  });

  it('refuses a row with too few fields and a key that does not parse, naming the row', () => {
    const r = new CopyRowRouter(TEXT, 1, 2, parity);
    expect(() => r.push(Buffer.from('1\n'))).toThrow(/missing data for the sharding key column/);
    const r2 = new CopyRowRouter(TEXT, 0, 2, parity);
    r2.push(Buffer.from('1\ta\n'));
    let err: unknown = null;
    try {
      r2.push(Buffer.from('x\tb\n'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).code).toBe('22P02');
    expect((err as PgError).detail).toBe('COPY data row 2');
  });
});

describe('CopyRowRouter, CSV', () => {
  it('keeps quoted delimiters, quotes and newlines inside a field, at any chunking', () => {
    const data = Buffer.from('"1","a,b"\n2,"say ""hi""\nnext line"\n"3",\n,nullkey\n"6",x\n');
    const [even, odd] = expectChunkingInvariant(CSV, 0, data);
    expect(even).toBe('2,"say ""hi""\nnext line"\n,nullkey\n"6",x\n');
    expect(odd).toBe('"1","a,b"\n"3",\n');
  });

  it('reads a quoted empty key as an empty string, not NULL', () => {
    expect(() => route(CSV, 0, Buffer.from('"",x\n'))).toThrow(/bigint: ""/);
  });

  it('supports another ESCAPE and DELIMITER, and HEADER', () => {
    const fmt = { ...CSV, delimiter: ';', escape: '\\', header: true };
    const data = Buffer.from('id;txt\n"4";"a\\"b;c"\n5;x\n');
    expect(expectChunkingInvariant(fmt, 0, data)).toEqual(['id;txt\n"4";"a\\"b;c"\n', 'id;txt\n5;x\n']);
  });
});

describe('CopyRowRouter, binary', () => {
  function binary(rows: (bigint | null)[][]): Buffer {
    const parts = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
    for (const row of rows) {
      const count = Buffer.alloc(2);
      count.writeInt16BE(row.length);
      parts.push(count);
      for (const v of row) {
        const len = Buffer.alloc(4);
        if (v === null) {
          len.writeInt32BE(-1);
          parts.push(len);
        } else {
          len.writeInt32BE(8);
          const val = Buffer.alloc(8);
          val.writeBigInt64BE(v);
          parts.push(len, val);
        }
      }
    }
    parts.push(Buffer.from([0xff, 0xff]));
    return Buffer.concat(parts);
  }

  it('routes tuples by the key field, with header and trailer on every shard, at any chunking', () => {
    const data = binary([
      [1n, 10n],
      [2n, 20n],
      [null, 30n],
      [5n, null],
    ]);
    const [even, odd] = expectChunkingInvariant(BINARY, 0, data).map((s) => Buffer.from(s, 'latin1'));
    expect(even.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(even.length).toBe(19 + (2 + 12 + 12) + (2 + 4 + 12) + 2);
    expect(odd.length).toBe(19 + (2 + 12 + 12) + (2 + 12 + 4) + 2);
    expect(odd.readInt16BE(odd.length - 2)).toBe(-1);
  });

  it('refuses a bad signature and data ending inside a tuple', () => {
    expect(() => route(BINARY, 0, Buffer.from('NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1'))).toThrow(
      /signature/,
    );
    const cut = binary([[1n, 2n]]);
    expect(() => route(BINARY, 0, cut.subarray(0, cut.length - 6))).toThrow(/middle of a row/);
  });
});

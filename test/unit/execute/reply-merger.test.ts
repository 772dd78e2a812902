// Unit tests for ReplyMerger: N shards' reply frames in, one client reply out — streaming, k-way ORDER BY merge,
// LIMIT/OFFSET, aggregates, command tags, errors and mismatched shards. Frames are built by hand; no sockets.
import { describe, expect, it, vi } from 'vitest';
import {
  MERGE_QUEUE_MAX_BYTES,
  MERGE_QUEUE_MAX_ROWS,
  ReplyMerger,
} from '../../../src/execute/reply-merger.js';
import {
  CHECKED_SPECS,
  checkOnce,
  PASS_THROUGH_SPEC,
  sortKey,
  type MergeSpec,
} from '../../../src/execute/merge-spec.js';
import { numericBinaryToText, numericTextToBinary, TypeOid } from '../../../src/execute/value-compare.js';

// ---- frame builders ----

function frame(type: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

interface Col {
  oid: number;
  format?: number;
  name?: string;
}

function rowDescription(cols: Col[]): Buffer {
  const parts: Buffer[] = [u16(cols.length)];
  cols.forEach((c, i) => {
    const fixed = Buffer.alloc(18);
    fixed.writeUInt32BE(16384 + i, 0); // table OID (differs per shard in real life)
    fixed.writeInt16BE(i + 1, 4);
    fixed.writeUInt32BE(c.oid, 6);
    fixed.writeInt16BE(-1, 10);
    fixed.writeInt32BE(-1, 12);
    fixed.writeInt16BE(c.format ?? 0, 16);
    parts.push(Buffer.from(`${c.name ?? `c${i}`}\0`), fixed);
  });
  return frame('T', Buffer.concat(parts));
}

function dataRow(values: (string | Buffer | null)[]): Buffer {
  const parts: Buffer[] = [u16(values.length)];
  for (const v of values) {
    if (v === null) {
      parts.push(i32(-1));
    } else {
      const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      parts.push(i32(b.length), b);
    }
  }
  return frame('D', Buffer.concat(parts));
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}
function i32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
function i64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
}

const C = (tag: string): Buffer => frame('C', `${tag}\0`);
const PARSE_COMPLETE = frame('1');
const BIND_COMPLETE = frame('2');
const NO_DATA = frame('n');
const EMPTY = frame('I');
const SUSPENDED = frame('s');

/** ErrorResponse / NoticeResponse with fields in the given order (keys are field codes). */
function errorFrame(fields: [string, string][], type = 'E'): Buffer {
  return frame(type, fields.map(([k, v]) => `${k}${v}\0`).join('') + '\0');
}

// ---- reading what was emitted ----

function values(f: Buffer): (string | null)[] {
  const count = f.readInt16BE(5);
  const out: (string | null)[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const len = f.readInt32BE(pos);
    pos += 4;
    out.push(len < 0 ? null : f.toString('utf8', pos, pos + len));
    if (len > 0) pos += len;
  }
  return out;
}

function errorFields(f: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 5;
  while (f[pos] !== 0) {
    const end = f.indexOf(0, pos + 1);
    out[String.fromCharCode(f[pos])] = f.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return out;
}

class Client {
  readonly frames: Buffer[] = [];
  readonly emit = vi.fn((f: Buffer) => {
    this.frames.push(f);
  });
  types(): string {
    return this.frames.map((f) => String.fromCharCode(f[0])).join('');
  }
  rows(column = 0): (string | null)[] {
    return this.frames.filter((f) => f[0] === 0x44).map((f) => values(f)[column]);
  }
  tag(): string | null {
    const last = this.frames.at(-1);
    return last !== undefined && last[0] === 0x43 ? last.toString('utf8', 5, last.length - 1) : null;
  }
  errors(): Record<string, string>[] {
    return this.frames.filter((f) => f[0] === 0x45).map(errorFields);
  }
}

function spec(overrides: Partial<MergeSpec>): MergeSpec {
  return { ...PASS_THROUGH_SPEC, ...overrides };
}

/** Runs one column of `type` per shard (each already sorted) through a merger; returns the client's column 0. */
function mergeColumn(
  shardRows: (string | Buffer | null)[][],
  mergeSpec: Partial<MergeSpec>,
  col: Col,
): { client: Client; merger: ReplyMerger } {
  const client = new Client();
  const merger = new ReplyMerger(shardRows.length, spec(mergeSpec), client.emit);
  shardRows.forEach((_, s) => merger.push(s, rowDescription([col])));
  // Interleave the shards row by row, as sockets would.
  const longest = Math.max(...shardRows.map((r) => r.length));
  for (let i = 0; i < longest; i++) {
    shardRows.forEach((rows, s) => {
      if (i < rows.length) merger.push(s, dataRow([rows[i]]));
    });
  }
  shardRows.forEach((rows, s) => merger.push(s, C(`SELECT ${rows.length}`)));
  return { client, merger };
}

// ---- tests ----

describe('ReplyMerger: unordered streaming', () => {
  it('streams rows as they arrive, the original frame objects, RowDescription once, SELECT n summed', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    const t0 = rowDescription([{ oid: TypeOid.int4 }]);
    const a = dataRow(['1']);
    const b = dataRow(['2']);
    const c = dataRow(['3']);
    merger.push(0, t0);
    merger.push(0, a);
    expect(client.frames).toEqual([t0, a]); // before shard 1 has said anything
    merger.push(1, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(1, b);
    merger.push(0, c);
    merger.push(0, C('SELECT 2'));
    expect(merger.isDone).toBe(false);
    merger.push(1, C('SELECT 1'));
    expect(merger.isDone).toBe(true);
    expect(client.frames[1]).toBe(a);
    expect(client.frames[2]).toBe(b);
    expect(client.frames[3]).toBe(c);
    expect(client.types()).toBe('TDDDC');
    expect(client.tag()).toBe('SELECT 3');
  });

  it('applies OFFSET and LIMIT across the combined stream and reports the rows sent', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ offset: 1, limit: 3 }), client.emit);
    for (const s of [0, 1]) merger.push(s, rowDescription([{ oid: TypeOid.text }]));
    merger.push(0, dataRow(['a1']));
    merger.push(1, dataRow(['b1']));
    merger.push(0, dataRow(['a2']));
    merger.push(1, dataRow(['b2']));
    merger.push(1, dataRow(['b3']));
    merger.push(0, dataRow(['a3']));
    merger.push(0, C('SELECT 3'));
    merger.push(1, C('SELECT 3'));
    expect(client.rows()).toEqual(['b1', 'a2', 'b2']);
    expect(client.tag()).toBe('SELECT 3');
  });

  it('LIMIT 0 sends no rows; a shard with zero rows is fine', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ limit: 0 }), client.emit);
    merger.push(0, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(0, dataRow(['1']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(1, C('SELECT 0'));
    expect(client.types()).toBe('TC');
    expect(client.tag()).toBe('SELECT 0');
  });

  it('extended protocol: ParseComplete/BindComplete once each, in order, and the others checked', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    for (const s of [0, 1]) {
      merger.push(s, PARSE_COMPLETE);
      merger.push(s, BIND_COMPLETE);
      merger.push(s, NO_DATA);
    }
    merger.push(1, C('UPDATE 2'));
    merger.push(0, C('UPDATE 5'));
    expect(client.frames).toEqual([PARSE_COMPLETE, BIND_COMPLETE, NO_DATA, C('UPDATE 7')]);
  });

  it("passes every shard's NoticeResponse on, not deduplicated", () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    const notice = errorFrame(
      [
        ['S', 'NOTICE'],
        ['C', '00000'],
        ['M', 'table "t" does not exist, skipping'],
      ],
      'N',
    );
    merger.push(0, notice);
    merger.push(1, notice);
    merger.push(0, C('DROP TABLE'));
    merger.push(1, C('DROP TABLE'));
    expect(client.types()).toBe('NNC');
    expect(client.tag()).toBe('DROP TABLE');
  });

  it('passes notices and ParameterStatus of a broadcast statement (DDL, SET) from the first shard only', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, { ...PASS_THROUGH_SPEC, isBroadcast: true }, client.emit);
    const notice = errorFrame(
      [
        ['S', 'NOTICE'],
        ['C', '00000'],
        ['M', 'table "t" does not exist, skipping'],
      ],
      'N',
    );
    merger.push(1, notice);
    merger.push(0, notice);
    merger.push(0, C('DROP TABLE'));
    merger.push(1, C('DROP TABLE'));
    expect(client.types()).toBe('NC');
  });

  it('EmptyQueryResponse once, when every shard has ended', () => {
    const client = new Client();
    const merger = new ReplyMerger(3, PASS_THROUGH_SPEC, client.emit);
    merger.push(2, EMPTY);
    merger.push(0, EMPTY);
    expect(client.frames).toEqual([]);
    merger.push(1, EMPTY);
    expect(client.frames).toEqual([EMPTY]);
    expect(merger.isDone).toBe(true);
  });

  it('COPY TO STDOUT: CopyOutResponse once, data streamed, one CopyDone, COPY n summed', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    const copyOut = frame('H', Buffer.from([0, 0, 1, 0, 0]));
    for (const s of [0, 1]) merger.push(s, copyOut);
    merger.push(0, frame('d', '1\n'));
    merger.push(1, frame('d', '2\n'));
    merger.push(0, frame('c'));
    merger.push(0, C('COPY 1'));
    merger.push(1, frame('d', '3\n'));
    merger.push(1, frame('c'));
    merger.push(1, C('COPY 2'));
    expect(client.types()).toBe('HdddcC');
    expect(client.tag()).toBe('COPY 3');
  });

  it("binary COPY TO: one file header and one trailer around every shard's rows (rows ending in 0xffff kept)", () => {
    const client = new Client();
    const merger = new ReplyMerger(3, PASS_THROUGH_SPEC, client.emit);
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), i32(0), i32(0)]);
    const row = (v: bigint): Buffer => Buffer.concat([u16(1), i32(8), i64(v)]); // ends in ff ff for -1
    const trailer = Buffer.from([0xff, 0xff]);
    for (const s of [0, 1, 2]) merger.push(s, frame('H', Buffer.from([1, 0, 1, 0, 1])));
    merger.push(0, frame('d', Buffer.concat([header, row(-1n)]))); // PostgreSQL: header with the first row
    merger.push(1, frame('d', Buffer.concat([header, trailer]))); // an empty shard: header with the trailer
    merger.push(2, frame('d', Buffer.concat([header, row(7n)])));
    merger.push(0, frame('d', trailer));
    merger.push(2, frame('d', trailer));
    for (const s of [0, 1, 2]) {
      merger.push(s, frame('c'));
      merger.push(s, C(`COPY ${s === 1 ? 0 : 1}`));
    }
    const data = Buffer.concat(client.frames.filter((f) => f[0] === 0x64).map((f) => f.subarray(5)));
    expect(data).toEqual(Buffer.concat([header, row(-1n), row(7n), trailer]));
    expect(client.types()).toBe('HdddcC');
    expect(client.tag()).toBe('COPY 2');
  });
});

describe('ReplyMerger: DISTINCT ON', () => {
  it('keeps the first row of each run of equal keys in the merged order, before OFFSET/LIMIT count', () => {
    const { client } = mergeColumn(
      [
        ['1', '1.0', '3', '5'],
        ['1.00', '2', '3', '4', '4'],
      ],
      { orderBy: [sortKey(0)], distinctOn: [0], offset: 1, limit: 3 },
      { oid: TypeOid.numeric },
    );
    // Merged: 1 1.0 1.00 2 3 3 4 4 5 → first of each run (1 = 1.0 = 1.00 numerically): 1 2 3 4 5 → OFFSET 1 LIMIT 3.
    expect(client.rows()).toEqual(['2', '3', '4']);
  });
});

describe('ReplyMerger: ORDER BY k-way merge', () => {
  it('int8 ASC, exact beyond 2^53', () => {
    const { client } = mergeColumn(
      [
        ['-9223372036854775808', '-5', '9007199254740993', '9223372036854775807'],
        ['-6', '9007199254740992', '9007199254740994'],
        [],
      ],
      { orderBy: [sortKey(0)] },
      { oid: TypeOid.int8 },
    );
    expect(client.rows()).toEqual([
      '-9223372036854775808',
      '-6',
      '-5',
      '9007199254740992',
      '9007199254740993',
      '9007199254740994',
      '9223372036854775807',
    ]);
    expect(client.tag()).toBe('SELECT 7');
  });

  it('int8 DESC puts NULLs first by default; DESC NULLS LAST; ASC NULLS FIRST', () => {
    const desc = mergeColumn(
      [
        [null, '10', '2'],
        ['11', '3', '-1'],
      ],
      { orderBy: [sortKey(0, true)] },
      { oid: 20 },
    );
    expect(desc.client.rows()).toEqual([null, '11', '10', '3', '2', '-1']);

    const descNullsLast = mergeColumn(
      [
        ['10', '2', null],
        ['11', null],
      ],
      { orderBy: [sortKey(0, true, false)] },
      { oid: 20 },
    );
    expect(descNullsLast.client.rows()).toEqual(['11', '10', '2', null, null]);

    const ascNullsFirst = mergeColumn(
      [
        [null, '5'],
        ['1', '7'],
      ],
      { orderBy: [sortKey(0, false, true)] },
      { oid: 20 },
    );
    expect(ascNullsFirst.client.rows()).toEqual([null, '1', '5', '7']);

    const ascDefault = mergeColumn(
      [
        ['5', null],
        ['1', '7', null],
      ],
      { orderBy: [sortKey(0)] },
      { oid: 20 },
    );
    expect(ascDefault.client.rows()).toEqual(['1', '5', '7', null, null]);
  });

  it('numeric with different scales and negatives, never through a double', () => {
    const { client } = mergeColumn(
      [
        ['-100', '-10.5', '-2', '0.10', '3.14159', '12345678901234567890.000000000000000001'],
        ['-10.25', '-2.000001', '0', '0.1', '3.1416', '12345678901234567890', 'NaN'],
      ],
      { orderBy: [sortKey(0)] },
      { oid: TypeOid.numeric },
    );
    expect(client.rows()).toEqual([
      '-100',
      '-10.5',
      '-10.25',
      '-2.000001',
      '-2',
      '0',
      '0.10', // equal to 0.1: ties go to the lower shard
      '0.1',
      '3.14159',
      '3.1416',
      '12345678901234567890',
      '12345678901234567890.000000000000000001',
      'NaN',
    ]);
  });

  it('text by byte order (the "C" collation)', () => {
    const { client } = mergeColumn(
      [
        ['B', 'a', 'b', 'é'],
        ['A', 'Z', 'ab', 'z'],
      ],
      { orderBy: [sortKey(0)] },
      { oid: TypeOid.varchar },
    );
    expect(client.rows()).toEqual(['A', 'B', 'Z', 'a', 'ab', 'b', 'z', 'é']);
  });

  it('timestamptz as instants: offsets across a DST change, BC, infinity', () => {
    const { client } = mergeColumn(
      [
        ['-infinity', '2024-10-27 02:15:00+01', '2024-10-27 03:00:00+01', 'infinity'],
        [
          '0044-03-15 12:00:00+00 BC',
          '2024-10-27 02:30:00+02',
          '2024-10-27 02:59:59.999999+00',
          '10000-01-01 00:00:00+00',
        ],
      ],
      { orderBy: [sortKey(0)] },
      { oid: TypeOid.timestamptz },
    );
    expect(client.rows()).toEqual([
      '-infinity',
      '0044-03-15 12:00:00+00 BC',
      '2024-10-27 02:30:00+02', // 00:30 UTC
      '2024-10-27 02:15:00+01', // 01:15 UTC
      '2024-10-27 03:00:00+01', // 02:00 UTC
      '2024-10-27 02:59:59.999999+00',
      '10000-01-01 00:00:00+00',
      'infinity',
    ]);
  });

  it('uuid, descending', () => {
    const { client } = mergeColumn(
      [
        ['f47ac10b-58cc-4372-a567-0e02b2c3d479', '00000000-0000-0000-0000-000000000001'],
        ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '0000000a-0000-0000-0000-000000000000'],
      ],
      { orderBy: [sortKey(0, true)] },
      { oid: TypeOid.uuid },
    );
    expect(client.rows()).toEqual([
      'f47ac10b-58cc-4372-a567-0e02b2c3d479',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '0000000a-0000-0000-0000-000000000000',
      '00000000-0000-0000-0000-000000000001',
    ]);
  });

  it('binary int4 (negatives sort below positives, unlike their bytes)', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(0)] }), client.emit);
    const col = { oid: TypeOid.int4, format: 1 };
    merger.push(0, rowDescription([col]));
    merger.push(1, rowDescription([col]));
    for (const n of [-300, 2, 70000]) merger.push(0, dataRow([i32(n)]));
    for (const n of [-1, 5]) merger.push(1, dataRow([i32(n)]));
    merger.push(0, C('SELECT 3'));
    merger.push(1, C('SELECT 2'));
    const got = client.frames.filter((f) => f[0] === 0x44).map((f) => f.readInt32BE(11));
    expect(got).toEqual([-300, -1, 2, 5, 70000]);
  });

  it('several keys: the second breaks ties of the first', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(1), sortKey(0, true)] }), client.emit);
    for (const s of [0, 1]) merger.push(s, rowDescription([{ oid: TypeOid.int4 }, { oid: TypeOid.text }]));
    merger.push(0, dataRow(['1', 'a']));
    merger.push(0, dataRow(['3', 'b']));
    merger.push(1, dataRow(['2', 'a']));
    merger.push(1, dataRow(['4', 'b']));
    merger.push(0, C('SELECT 2'));
    merger.push(1, C('SELECT 2'));
    expect(client.rows(0)).toEqual(['2', '1', '4', '3']);
  });

  it('a shard with zero rows does not hold the others back once it ends', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(0)] }), client.emit);
    merger.push(0, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(0, dataRow(['1']));
    merger.push(0, dataRow(['2']));
    expect(client.rows()).toEqual([]); // shard 1 might still send 0
    merger.push(1, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(1, C('SELECT 0'));
    expect(client.rows()).toEqual(['1', '2']);
    merger.push(0, C('SELECT 2'));
    expect(client.tag()).toBe('SELECT 2');
  });

  it('streams: a row goes out as soon as every running shard has one waiting, before any shard ends', () => {
    const client = new Client();
    const merger = new ReplyMerger(3, spec({ orderBy: [sortKey(0)] }), client.emit);
    for (const s of [0, 1, 2]) merger.push(s, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(0, dataRow(['1']));
    merger.push(1, dataRow(['5']));
    expect(client.emit).toHaveBeenCalledTimes(1); // only the RowDescription: shard 2 has no row yet
    merger.push(2, dataRow(['3']));
    expect(client.rows()).toEqual(['1']); // shard 0 must show its next row before 3 can go
    merger.push(0, dataRow(['4']));
    expect(client.rows()).toEqual(['1', '3']);
    merger.push(2, C('SELECT 1'));
    expect(client.rows()).toEqual(['1', '3', '4']);
    expect(merger.isDone).toBe(false);
    merger.push(0, C('SELECT 2'));
    merger.push(1, C('SELECT 1'));
    expect(client.rows()).toEqual(['1', '3', '4', '5']);
    expect(client.tag()).toBe('SELECT 4');
  });

  it('OFFSET/LIMIT over the merged order', () => {
    const { client } = mergeColumn(
      [
        ['1', '4', '6', '8'],
        ['2', '3', '5', '7'],
      ],
      { orderBy: [sortKey(0)], offset: 2, limit: 3 },
      { oid: TypeOid.int4 },
    );
    expect(client.rows()).toEqual(['3', '4', '5']);
    expect(client.tag()).toBe('SELECT 3');
  });

  it('rows kept across push() are copied: the caller may reuse its read buffer', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(0)] }), client.emit);
    for (const s of [0, 1]) merger.push(s, rowDescription([{ oid: TypeOid.text }]));
    const reused = dataRow(['aaa']);
    merger.push(0, reused);
    reused.fill(0x7a, 11); // the caller's buffer now holds other bytes ('zzz')
    merger.push(1, dataRow(['bbb']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(client.rows()).toEqual(['aaa', 'bbb']);
  });

  it("without a RowDescription it uses the caller's column types, or refuses with 0A000", () => {
    const typed = new Client();
    const withTypes = new ReplyMerger(
      2,
      spec({ orderBy: [sortKey(0)], columnTypes: [{ typeOid: TypeOid.int4, format: 0 }] }),
      typed.emit,
    );
    for (const s of [0, 1]) withTypes.push(s, BIND_COMPLETE);
    withTypes.push(0, dataRow(['10']));
    withTypes.push(1, dataRow(['9']));
    withTypes.push(0, C('SELECT 1'));
    withTypes.push(1, C('SELECT 1'));
    expect(typed.rows()).toEqual(['9', '10']);

    const untyped = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(0)] }), untyped.emit);
    merger.push(0, dataRow(['10']));
    merger.push(1, dataRow(['9']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(untyped.types()).toBe('E');
    expect(untyped.errors()[0].C).toBe('0A000');
    expect(merger.isDone).toBe(true);
  });

  it('takes the column types of a Describe the proxy added (noteColumnTypes) without touching a frozen spec', () => {
    const client = new Client();
    const frozen = Object.freeze(spec({ orderBy: [Object.freeze(sortKey(0))] }));
    const merger = new ReplyMerger(2, frozen, client.emit);
    merger.noteColumnTypes([{ typeOid: TypeOid.int4, format: 0 }]);
    merger.noteColumnTypes([{ typeOid: TypeOid.text, format: 0 }]); // the first description counts
    for (const s of [0, 1]) merger.push(s, BIND_COMPLETE);
    merger.push(0, dataRow(['10']));
    merger.push(1, dataRow(['9']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(client.rows()).toEqual(['9', '10']); // as integers ('10' < '9' as text)
    expect(frozen.columnTypes).toBeUndefined();
  });
});

describe('checkOnce: a frozen spec checked once, not again by each merger', () => {
  it('remembers a spec that passes, and not one that fails', () => {
    const good = Object.freeze(spec({ orderBy: [sortKey(0)] }));
    const bad = Object.freeze(spec({ limit: -1 }));
    expect(CHECKED_SPECS.has(good)).toBe(false);
    expect(checkOnce(good)).toBe(true);
    expect(CHECKED_SPECS.has(good)).toBe(true);
    expect(checkOnce(bad)).toBe(false);
    expect(CHECKED_SPECS.has(bad)).toBe(false);
    expect(() => new ReplyMerger(2, bad, new Client().emit)).toThrow(/bad merge spec/);
  });
});

describe('ReplyMerger: k-way merge against a reference sort', () => {
  /** mulberry32: a small seeded PRNG so failures reproduce. */
  function prng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: random shards, interleavings, NULLs, LIMIT/OFFSET', (seed) => {
    const random = prng(seed);
    const shardCount = 1 + Math.floor(random() * 4);
    const isDescending = random() < 0.5;
    const isNullsFirst = random() < 0.5;
    const offset = Math.floor(random() * 5);
    const limit = random() < 0.3 ? null : Math.floor(random() * 20);
    const order = (x: bigint | null, y: bigint | null): number => {
      if (x === null || y === null) return x === y ? 0 : (x === null) === isNullsFirst ? -1 : 1;
      const c = x < y ? -1 : x > y ? 1 : 0;
      return isDescending ? -c : c;
    };
    const shards = Array.from({ length: shardCount }, () =>
      Array.from({ length: Math.floor(random() * 12) }, () =>
        random() < 0.15 ? null : BigInt(Math.floor((random() - 0.5) * 2 ** 20)) * 2n ** 44n,
      ).sort(order),
    );
    const expected = shards
      .flat()
      .sort(order)
      .slice(offset, limit === null ? undefined : offset + limit)
      .map((v) => (v === null ? null : String(v)));

    const client = new Client();
    const merger = new ReplyMerger(
      shardCount,
      spec({ orderBy: [sortKey(0, isDescending, isNullsFirst)], offset, limit }),
      client.emit,
    );
    const pending = shards.map((rows) => [
      rowDescription([{ oid: TypeOid.int8 }]),
      ...rows.map((v) => dataRow([v === null ? null : String(v)])),
      C(`SELECT ${rows.length}`),
    ]);
    while (pending.some((p) => p.length > 0)) {
      const live = pending.filter((p) => p.length > 0);
      const next = live[Math.floor(random() * live.length)];
      merger.push(pending.indexOf(next), next.shift() as Buffer);
    }
    expect(merger.isDone).toBe(true);
    expect(client.rows()).toEqual(expected);
    expect(client.tag()).toBe(`SELECT ${expected.length}`);
  });
});

describe('ReplyMerger: errors', () => {
  const uniqueViolation = errorFrame([
    ['S', 'ERROR'],
    ['V', 'ERROR'],
    ['C', '23505'],
    ['M', 'duplicate key value violates unique constraint "t_pkey"'],
    ['D', 'Key (id)=(7) already exists.'],
    ['s', 'public'],
    ['t', 't'],
    ['n', 't_pkey'],
  ]);

  it('a shard failing midway: rows already sent stay, its error goes out once with the shard in Detail', () => {
    const client = new Client();
    const merger = new ReplyMerger(3, PASS_THROUGH_SPEC, client.emit);
    for (const s of [0, 1, 2]) merger.push(s, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(0, dataRow(['1']));
    merger.push(1, dataRow(['2']));
    merger.push(1, uniqueViolation);
    merger.push(0, dataRow(['3'])); // after the error: dropped
    merger.push(
      2,
      errorFrame([
        ['S', 'ERROR'],
        ['C', '57014'],
        ['M', 'canceling statement'],
      ]),
    ); // second error: dropped
    expect(merger.isDone).toBe(false);
    merger.push(0, C('SELECT 2'));
    expect(merger.isDone).toBe(true);
    expect(client.types()).toBe('TDDE');
    const [error] = client.errors();
    expect(error).toEqual({
      S: 'ERROR',
      V: 'ERROR',
      C: '23505',
      M: 'duplicate key value violates unique constraint "t_pkey"',
      D: 'Key (id)=(7) already exists. (shard 1)',
      s: 'public',
      t: 't',
      n: 't_pkey',
    });
    // Every other field byte for byte: only the Detail grew.
    const sent = client.frames[3];
    const expected = Buffer.from(uniqueViolation);
    const at = expected.indexOf('already exists.') + 'already exists.'.length;
    const spliced = Buffer.concat([
      expected.subarray(0, at),
      Buffer.from(' (shard 1)'),
      expected.subarray(at),
    ]);
    spliced.writeInt32BE(spliced.length - 1, 1);
    expect(sent).toEqual(spliced);
  });

  it('adds a Detail field when the error has none', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    merger.push(0, C('UPDATE 1'));
    merger.push(
      1,
      errorFrame([
        ['S', 'ERROR'],
        ['C', '40P01'],
        ['M', 'deadlock detected'],
      ]),
    );
    expect(client.errors()).toEqual([{ S: 'ERROR', C: '40P01', M: 'deadlock detected', D: 'shard 1' }]);
    expect(client.types()).toBe('E');
  });

  it('in a sorted merge, rows still waiting are dropped when a shard fails', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ orderBy: [sortKey(0)] }), client.emit);
    for (const s of [0, 1]) merger.push(s, rowDescription([{ oid: TypeOid.int4 }]));
    merger.push(0, dataRow(['1']));
    merger.push(0, dataRow(['4']));
    merger.push(1, dataRow(['3']));
    expect(client.rows()).toEqual(['1', '3']); // 4 waits for shard 1's next row
    merger.push(
      1,
      errorFrame([
        ['S', 'ERROR'],
        ['C', '22012'],
        ['M', 'division by zero'],
      ]),
    );
    merger.push(0, C('SELECT 2'));
    expect(client.types()).toBe('TDDE');
    expect(client.errors()[0].D).toBe('shard 1');
  });

  it('RowDescriptions that differ in column count or type end the statement with XX000', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    merger.push(0, rowDescription([{ oid: TypeOid.int4 }, { oid: TypeOid.text }]));
    merger.push(0, dataRow(['1', 'a']));
    merger.push(1, rowDescription([{ oid: TypeOid.int8 }, { oid: TypeOid.text }]));
    merger.push(1, dataRow(['2', 'b']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(client.types()).toBe('TDE');
    const [error] = client.errors();
    expect(error.C).toBe('XX000');
    expect(error.M).toBe('shards returned different row shapes');
    expect(error.D).toContain('shard 1: 2 columns');
    expect(merger.hasFailed).toBe(true);

    const fewer = new Client();
    const other = new ReplyMerger(2, PASS_THROUGH_SPEC, fewer.emit);
    other.push(0, rowDescription([{ oid: TypeOid.int4 }]));
    other.push(1, rowDescription([{ oid: TypeOid.int4 }, { oid: TypeOid.int4 }]));
    expect(fewer.errors()[0].M).toBe('shards returned different row shapes');
  });

  it('user-defined types (per-database OIDs) may differ between shards', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    merger.push(0, rowDescription([{ oid: 41000 }]));
    merger.push(1, rowDescription([{ oid: 52311 }]));
    merger.push(0, C('SELECT 0'));
    merger.push(1, C('SELECT 0'));
    expect(client.types()).toBe('TC');
  });

  it('replies of different kinds before the rows end the statement with XX000', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    merger.push(0, PARSE_COMPLETE);
    merger.push(1, BIND_COMPLETE);
    merger.push(0, C('SET'));
    merger.push(1, C('SET'));
    expect(client.types()).toBe('1E');
    expect(client.errors()[0].M).toBe('shards returned different replies');
  });

  it('PortalSuspended from several shards: 0A000 (row-limited Execute is not merged)', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, client.emit);
    merger.push(0, dataRow(['1']));
    merger.push(0, SUSPENDED);
    merger.push(1, dataRow(['2']));
    merger.push(1, SUSPENDED);
    expect(client.types()).toBe('DE');
    expect(client.errors()[0]).toMatchObject({
      C: '0A000',
      M: 'row-limited Execute across shards is not supported yet',
    });
    expect(merger.isDone).toBe(true);

    const single = new Client();
    const one = new ReplyMerger(1, PASS_THROUGH_SPEC, single.emit);
    one.push(0, dataRow(['1']));
    one.push(0, SUSPENDED);
    expect(single.types()).toBe('Ds');
  });
});

describe('ReplyMerger: command tags', () => {
  function tags(shardTags: string[], options: Partial<MergeSpec> = {}): Client {
    const client = new Client();
    const merger = new ReplyMerger(shardTags.length, spec(options), client.emit);
    shardTags.forEach((t, s) => merger.push(s, C(t)));
    expect(merger.isDone).toBe(true);
    return client;
  }

  it('sums INSERT/UPDATE/DELETE/COPY/MERGE counts', () => {
    expect(tags(['INSERT 0 2', 'INSERT 0 3', 'INSERT 0 0']).tag()).toBe('INSERT 0 5');
    expect(tags(['UPDATE 4', 'UPDATE 1']).tag()).toBe('UPDATE 5');
    expect(tags(['DELETE 0', 'DELETE 9']).tag()).toBe('DELETE 9');
    expect(tags(['COPY 10', 'COPY 20']).tag()).toBe('COPY 30');
    expect(tags(['MERGE 1', 'MERGE 1']).tag()).toBe('MERGE 2');
  });

  it('CREATE TABLE AS ("SELECT n", no rows sent) sums the counts', () => {
    expect(tags(['SELECT 3', 'SELECT 4']).tag()).toBe('SELECT 7');
  });

  it('other tags: the same on every shard, reported once; different ones fail', () => {
    const same = tags(['CREATE TABLE', 'CREATE TABLE']);
    expect(same.types()).toBe('C');
    expect(same.tag()).toBe('CREATE TABLE');
    const different = tags(['SET', 'RESET']);
    expect(different.types()).toBe('E');
    expect(different.errors()[0]).toMatchObject({ C: 'XX000', M: 'shards returned different command tags' });
    expect(tags(['UPDATE 1', 'DELETE 1']).types()).toBe('E');
  });
});

describe('ReplyMerger: aggregates', () => {
  const cols: Col[] = [
    { oid: TypeOid.int8 }, // count
    { oid: TypeOid.numeric }, // sum
    { oid: TypeOid.int4 }, // min
    { oid: TypeOid.timestamptz }, // max
    { oid: TypeOid.text }, // carried from the first shard
    { oid: TypeOid.float8 }, // sum (double)
  ];
  const aggregates: MergeSpec['aggregates'] = [
    { column: 0, fn: 'count' },
    { column: 1, fn: 'sum' },
    { column: 2, fn: 'min' },
    { column: 3, fn: 'max' },
    { column: 5, fn: 'sum' },
  ];

  function aggregate(rows: ((string | null)[] | null)[], options: Partial<MergeSpec> = {}): Client {
    const client = new Client();
    const merger = new ReplyMerger(rows.length, spec({ aggregates, ...options }), client.emit);
    rows.forEach((row, s) => {
      merger.push(s, rowDescription(cols));
      if (row !== null) merger.push(s, dataRow(row));
      merger.push(s, C(`SELECT ${row === null ? 0 : 1}`));
    });
    expect(merger.isDone).toBe(true);
    return client;
  }

  it('combines count/sum/min/max, ignoring NULLs; other columns from the first shard', () => {
    const client = aggregate([
      ['3', '10.5', '2', null, 'first', '0.1'],
      ['0', null, null, null, 'second', null],
      ['9007199254740993', '-0.275', '-1', '2024-01-01 00:00:00+00', 'third', '0.2'],
    ]);
    expect(client.types()).toBe('TDC');
    const [row] = client.frames.filter((f) => f[0] === 0x44).map(values);
    expect(row).toEqual([
      '9007199254740996',
      '10.225',
      '-1',
      '2024-01-01 00:00:00+00',
      'first',
      '0.30000000000000004',
    ]);
    expect(client.tag()).toBe('SELECT 1');
  });

  it('all NULL → NULL', () => {
    const client = aggregate([
      ['0', null, null, null, 'a', null],
      ['0', null, null, null, 'b', null],
    ]);
    const [row] = client.frames.filter((f) => f[0] === 0x44).map(values);
    expect(row).toEqual(['0', null, null, null, 'a', null]);
  });

  it('binary int8 count and int4 min/max', () => {
    const client = new Client();
    const merger = new ReplyMerger(
      2,
      spec({
        aggregates: [
          { column: 0, fn: 'count' },
          { column: 1, fn: 'max' },
        ],
      }),
      client.emit,
    );
    const binCols: Col[] = [
      { oid: TypeOid.int8, format: 1 },
      { oid: TypeOid.int4, format: 1 },
    ];
    merger.push(0, rowDescription(binCols));
    merger.push(1, rowDescription(binCols));
    merger.push(0, dataRow([i64(2n ** 53n), i32(-5)]));
    merger.push(1, dataRow([i64(7n), i32(-7)]));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    const row = client.frames.find((f) => f[0] === 0x44) as Buffer;
    expect(row.readBigInt64BE(11)).toBe(2n ** 53n + 7n);
    expect(row.readInt32BE(23)).toBe(-5);
  });

  it('emits nothing before every shard has ended', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ aggregates: [{ column: 0, fn: 'count' }] }), client.emit);
    merger.push(0, rowDescription([{ oid: TypeOid.int8 }]));
    merger.push(0, dataRow(['1']));
    merger.push(0, C('SELECT 1'));
    expect(client.types()).toBe('T');
    merger.push(1, rowDescription([{ oid: TypeOid.int8 }]));
    merger.push(1, dataRow(['2']));
    merger.push(1, C('SELECT 1'));
    expect(client.rows()).toEqual(['3']);
  });

  it('a sum it cannot combine exactly fails with 0A000 rather than guessing', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ aggregates: [{ column: 0, fn: 'sum' }] }), client.emit);
    for (const s of [0, 1]) {
      merger.push(s, rowDescription([{ oid: 1186 }])); // interval
      merger.push(s, dataRow(['1 day']));
      merger.push(s, C('SELECT 1'));
    }
    expect(client.types()).toBe('TE');
    expect(client.errors()[0].C).toBe('0A000');
  });
});

describe('ReplyMerger: DISTINCT aggregates and ordered aggregates', () => {
  /** Feeds each shard's rows (after one RowDescription each) and ends them; returns what the client got. */
  function run(
    mergeSpec: Partial<MergeSpec>,
    cols: Col[],
    shardRows: (string | Buffer | null)[][][],
    options: { aggregateValuesMaxBytes?: number } = {},
  ): Client {
    const client = new Client();
    const merger = new ReplyMerger(shardRows.length, spec(mergeSpec), client.emit, options);
    shardRows.forEach((_, s) => merger.push(s, rowDescription(cols)));
    shardRows.forEach((rows, s) => {
      for (const row of rows) merger.push(s, dataRow(row));
    });
    shardRows.forEach((rows, s) => merger.push(s, C(`SELECT ${rows.length}`)));
    expect(merger.isDone).toBe(true);
    return client;
  }

  // SELECT status, count(DISTINCT user_id), count(*), sum(amount) FROM orders GROUP BY status: each shard groups by
  // (status, user_id) and returns user_id as a hidden 5th column; the placeholder in column 1 is 0.
  const grouped: Partial<MergeSpec> = {
    groupBy: [0],
    aggregates: [
      { column: 1, fn: 'count', distinctColumn: 4 },
      { column: 2, fn: 'count' },
      { column: 3, fn: 'sum' },
    ],
    hiddenCount: 1,
    orderBy: [sortKey(0)],
  };
  const groupedCols: Col[] = [
    { oid: TypeOid.text },
    { oid: TypeOid.int8 },
    { oid: TypeOid.int8 },
    { oid: TypeOid.numeric },
    { oid: TypeOid.int8 },
  ];

  it('counts each distinct value once per group across shards and sub-groups; other aggregates add up', () => {
    const client = run(grouped, groupedCols, [
      [
        ['paid', '0', '2', '10.50', '7'],
        ['paid', '0', '1', '1', '8'],
        ['new', '0', '1', '3', null],
      ],
      [
        ['paid', '0', '4', '0.25', '7'], // user 7 again, on another shard (a value that is not the sharding key)
        ['new', '0', '2', '1', '9'],
      ],
    ]);
    expect(client.types()).toBe('TDDC');
    expect(client.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([
      ['new', '1', '3', '4'],
      ['paid', '2', '7', '11.75'],
    ]);
    expect(client.tag()).toBe('SELECT 2');
  });

  it('without GROUP BY: one row even when no shard returns any (count 0, the rest NULL)', () => {
    const total: Partial<MergeSpec> = {
      groupBy: [],
      isGrandTotal: true,
      aggregates: [
        { column: 0, fn: 'count', distinctColumn: 3 },
        { column: 1, fn: 'sum', distinctColumn: 3 },
        { column: 2, fn: 'count' },
      ],
      hiddenCount: 1,
    };
    const cols: Col[] = [
      { oid: TypeOid.int8 },
      { oid: TypeOid.int8 },
      { oid: TypeOid.int8 },
      { oid: TypeOid.int4 },
    ];
    const empty = run(total, cols, [[], []]);
    expect(empty.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([['0', null, '0']]);
    expect(empty.tag()).toBe('SELECT 1');
    const some = run(total, cols, [
      [
        ['0', null, '2', '5'],
        ['0', null, '1', '6'],
      ],
      [
        ['0', null, '3', '5'],
        ['0', null, '1', null],
      ],
    ]);
    expect(some.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([['2', '11', '7']]);
  });

  it('applies HAVING to the merged distinct count', () => {
    const client = run(
      {
        ...grouped,
        having: {
          kind: 'compare',
          op: '>',
          left: { kind: 'column', column: 1 },
          right: { kind: 'constant', value: Buffer.from('1'), format: 0, typeOid: TypeOid.int8 },
        },
      },
      groupedCols,
      [
        [
          ['a', '0', '1', '1', '1'],
          ['b', '0', '1', '1', '1'],
        ],
        [['a', '0', '1', '1', '2']],
      ],
    );
    expect(client.rows()).toEqual(['a']);
  });

  it('fails with 54000, naming the bound, when the distinct values pass it', () => {
    const rows = Array.from({ length: 200 }, (_, i) => ['x', '0', '1', '1', String(i)]);
    const client = run(grouped, groupedCols, [rows, []], { aggregateValuesMaxBytes: 4096 });
    expect(client.types()).toBe('TE');
    expect(client.errors()[0]).toMatchObject({ C: '54000' });
    expect(client.errors()[0].M).toMatch(
      /count\(DISTINCT …\) across shards holds its values in the proxy, and these exceed 4096 bytes/,
    );
  });

  it("'whole': a group grouped by the sharding key keeps its shard's value, and fails if another shard has it too", () => {
    const whole: Partial<MergeSpec> = {
      groupBy: [0],
      aggregates: [
        { column: 1, fn: 'whole' },
        { column: 2, fn: 'count' },
      ],
    };
    const cols: Col[] = [{ oid: TypeOid.int8 }, { oid: TypeOid.text }, { oid: TypeOid.int8 }];
    const ok = run(whole, cols, [[['1', 'a,b', '2']], [['2', 'c', '1']]]);
    expect(ok.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([
      ['1', 'a,b', '2'],
      ['2', 'c', '1'],
    ]);
    const spanning = run(whole, cols, [[[null, 'a', '1']], [[null, 'b', '1']]]);
    expect(spanning.errors()[0]).toMatchObject({ C: '0A000' });
    expect(spanning.errors()[0].M).toMatch(/rows on several shards/);
  });

  it('string_agg(… ORDER BY …) without GROUP BY: one row per shard, elements interleaved by the key', () => {
    const client = run(
      {
        aggregates: [
          {
            column: 0,
            fn: 'string_agg',
            ordered: { valuesColumn: 1, keys: [sortKey(2)], delimiter: Buffer.from('-') },
          },
        ],
        hiddenCount: 2,
      },
      [{ oid: TypeOid.text }, { oid: 1009 }, { oid: 1016 }],
      [[[null, '{a,c}', '{1,3}']], [[null, '{b,d}', '{2,4}']], [[null, null, null]]],
    );
    expect(client.rows()).toEqual(['a-b-c-d']);
  });

  it('avg(DISTINCT x) keeps the type the shards describe (no sum rewrite to undo)', () => {
    const client = run(
      {
        groupBy: [],
        isGrandTotal: true,
        aggregates: [{ column: 0, fn: 'avg', distinctColumn: 1 }],
        hiddenCount: 1,
      },
      [{ oid: TypeOid.numeric }, { oid: TypeOid.int4 }],
      [
        [
          [null, '1'],
          [null, '2'],
        ],
        [[null, '2']],
      ],
    );
    const description = client.frames[0];
    expect(description.readInt16BE(5)).toBe(1);
    expect(description.readUInt32BE(description.indexOf(0, 7) + 7)).toBe(TypeOid.numeric);
    expect(client.rows()).toEqual(['1.5000000000000000']);
  });
});

describe('ReplyMerger: arguments', () => {
  it('rejects a bad shard number and a bad spec', () => {
    const merger = new ReplyMerger(2, PASS_THROUGH_SPEC, () => {});
    expect(() => merger.push(2, C('SELECT 0'))).toThrow(RangeError);
    expect(() => new ReplyMerger(0, PASS_THROUGH_SPEC, () => {})).toThrow(RangeError);
    expect(() => new ReplyMerger(2, spec({ limit: -1 }), () => {})).toThrow(/limit/);
  });
});

describe('ReplyMerger: replicated writes (omnisharded tables)', () => {
  it('reports one logical change: the tag once (not summed) and RETURNING rows from the first shard only', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ isReplicated: true }), client.emit);
    for (const s of [0, 1]) {
      merger.push(s, rowDescription([{ oid: TypeOid.int4 }]));
      merger.push(s, dataRow([String(7)]));
      merger.push(s, C('INSERT 0 1'));
    }
    expect(client.rows()).toEqual(['7']);
    expect(client.tag()).toBe('INSERT 0 1');
  });

  it('fails the statement when the copies disagree', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ isReplicated: true }), client.emit);
    merger.push(0, C('UPDATE 1'));
    merger.push(1, C('UPDATE 0'));
    expect(client.errors()).toHaveLength(1);
    expect(merger.isDone).toBe(true);
  });
});

describe('ReplyMerger: GROUP BY across shards', () => {
  it('combines the partial groups of every shard, then orders and limits the merged groups', () => {
    const client = new Client();
    const merger = new ReplyMerger(
      2,
      spec({
        groupBy: [0],
        aggregates: [
          { column: 1, fn: 'count' },
          { column: 2, fn: 'max' },
        ],
        orderBy: [{ column: 1, isDescending: true, isNullsFirst: true }],
        limit: 2,
      }),
      client.emit,
    );
    const t = rowDescription([{ oid: TypeOid.text }, { oid: TypeOid.int8 }, { oid: TypeOid.int4 }]);
    merger.push(0, t);
    merger.push(1, t);
    merger.push(0, dataRow(['a', '2', '5']));
    merger.push(0, dataRow(['b', '1', '7']));
    merger.push(1, dataRow(['a', '3', '9']));
    merger.push(1, dataRow(['c', '4', '1']));
    merger.push(1, dataRow([null, '1', '3']));
    merger.push(0, C('SELECT 2'));
    merger.push(1, C('SELECT 3'));
    expect(client.rows(0)).toEqual(['a', 'c']);
    expect(client.rows(1)).toEqual(['5', '4']);
    expect(client.rows(2)).toEqual(['9', '1']);
    expect(client.tag()).toBe('SELECT 2');
  });
});

describe('ReplyMerger: UNION and DISTINCT across shards (grouping by every output column)', () => {
  /** Each shard's rows of (numeric, text) columns, then the end; a UNION's spec: every column is the group key. */
  function union(
    shardRows: (string | Buffer | null)[][][],
    overrides: Partial<MergeSpec> = {},
    format = 0,
  ): Client {
    const client = new Client();
    const merger = new ReplyMerger(
      shardRows.length,
      spec({ groupBy: [0, 1], aggregates: [], ...overrides }),
      client.emit,
    );
    const t = rowDescription([
      { oid: TypeOid.numeric, format },
      { oid: TypeOid.text, format },
    ]);
    shardRows.forEach((_, s) => merger.push(s, t));
    shardRows.forEach((rows, s) => {
      for (const row of rows) merger.push(s, dataRow(row));
    });
    shardRows.forEach((rows, s) => merger.push(s, C(`SELECT ${rows.length}`)));
    expect(merger.isDone).toBe(true);
    return client;
  }

  it('keeps one row of values equal as PostgreSQL compares them (numeric 1.0 = 1.00), NULLs equal', () => {
    const client = union([
      [
        ['1.0', 'a'],
        ['2', 'b'],
        [null, 'n'],
      ],
      [
        ['1.00', 'a'],
        ['2.000', 'c'],
        [null, 'n'],
      ],
    ]);
    expect(client.rows(0)).toEqual(['1.0', '2', null, '2.000']);
    expect(client.rows(1)).toEqual(['a', 'b', 'n', 'c']);
    expect(client.tag()).toBe('SELECT 4');
  });

  it('binary numeric: equal values at different scales are one row', () => {
    const n = (text: string): Buffer => numericTextToBinary(text);
    const client = union(
      [
        [[n('12.5'), Buffer.from('x')]],
        [
          [n('12.500'), Buffer.from('x')],
          [n('-0.10'), Buffer.from('x')],
        ],
        [[n('-0.1'), Buffer.from('x')]],
      ],
      {},
      1,
    );
    expect(client.frames.filter((f) => f[0] === 0x44)).toHaveLength(2);
    expect(client.tag()).toBe('SELECT 2');
  });

  it('orders the merged rows, then applies OFFSET and LIMIT', () => {
    const client = union(
      [
        [
          ['3', 'c'],
          ['1', 'a'],
        ],
        [
          ['1.0', 'a'],
          ['2', 'b'],
          ['4', 'd'],
        ],
      ],
      { orderBy: [sortKey(0, true)], offset: 1, limit: 2 },
    );
    expect(client.rows(1)).toEqual(['c', 'b']);
    expect(client.tag()).toBe('SELECT 2');
  });

  it('refuses (0A000) to group values of a type whose equality it cannot reproduce (numeric[])', () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({ groupBy: [0], aggregates: [] }), client.emit);
    merger.push(0, rowDescription([{ oid: 1231 }]));
    merger.push(1, rowDescription([{ oid: 1231 }]));
    merger.push(0, dataRow(['{1.0}']));
    merger.push(1, dataRow(['{1.00}']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(client.types()).toBe('TE');
    expect(client.errors()[0]).toMatchObject({ C: '0A000' });
  });

  it('GROUP BY a numeric key: partial groups at different scales are combined', () => {
    const client = new Client();
    const merger = new ReplyMerger(
      2,
      spec({ groupBy: [0], aggregates: [{ column: 1, fn: 'count' }] }),
      client.emit,
    );
    const t = rowDescription([{ oid: TypeOid.numeric }, { oid: TypeOid.int8 }]);
    merger.push(0, t);
    merger.push(1, t);
    merger.push(0, dataRow(['5.0', '2']));
    merger.push(1, dataRow(['5.00', '3']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 1'));
    expect(client.rows(0)).toEqual(['5.0']);
    expect(client.rows(1)).toEqual(['5']);
  });

  it("UNION ALL streams every shard's rows; the tag counts them all", () => {
    const client = new Client();
    const merger = new ReplyMerger(2, spec({}), client.emit);
    const t = rowDescription([{ oid: TypeOid.numeric }]);
    merger.push(0, t);
    merger.push(1, t);
    merger.push(0, dataRow(['1.0']));
    merger.push(1, dataRow(['1.00']));
    merger.push(1, dataRow(['1.0']));
    merger.push(0, C('SELECT 1'));
    merger.push(1, C('SELECT 2'));
    expect(client.rows(0)).toEqual(['1.0', '1.00', '1.0']);
    expect(client.tag()).toBe('SELECT 3');
  });
});

/** Name, type OID, type size and format of each field of a RowDescription. */
function describedColumns(f: Buffer): { name: string; oid: number; size: number; format: number }[] {
  const count = f.readInt16BE(5);
  const out: { name: string; oid: number; size: number; format: number }[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const end = f.indexOf(0, pos);
    const name = f.toString('utf8', pos, end);
    pos = end + 1;
    out.push({
      name,
      oid: f.readUInt32BE(pos + 6),
      size: f.readInt16BE(pos + 10),
      format: f.readInt16BE(pos + 16),
    });
    pos += 18;
  }
  expect(pos).toBe(f.length);
  return out;
}

describe('ReplyMerger: avg from sum and a hidden count', () => {
  /** `SELECT avg(x), count(*)` run as `SELECT sum(x) AS avg, count(*), count(x) AS hidden`. */
  function average(
    sumCol: Col,
    shardRows: (string | Buffer | null)[][],
    countFormat = 0,
  ): { client: Client; merger: ReplyMerger } {
    const client = new Client();
    const merger = new ReplyMerger(
      shardRows.length,
      spec({
        aggregates: [
          { column: 0, fn: 'avg', countColumn: 2 },
          { column: 1, fn: 'count' },
        ],
        hiddenCount: 1,
      }),
      client.emit,
    );
    const cols: Col[] = [
      { ...sumCol, name: 'avg' },
      { oid: TypeOid.int8, name: 'count', format: countFormat },
      { oid: TypeOid.int8, name: 'shardgate.hidden.1', format: countFormat },
    ];
    shardRows.forEach((row, s) => {
      merger.push(s, rowDescription(cols));
      merger.push(s, dataRow(row));
      merger.push(s, C('SELECT 1'));
    });
    return { client, merger };
  }

  it('describes the avg column as numeric and drops the hidden count; divides as numeric_div', () => {
    const { client } = average({ oid: TypeOid.int8 }, [
      ['3', '2', '2'],
      ['4', '1', '1'],
      [null, '5', '0'],
    ]);
    expect(client.types()).toBe('TDC');
    expect(describedColumns(client.frames[0])).toEqual([
      { name: 'avg', oid: TypeOid.numeric, size: -1, format: 0 },
      { name: 'count', oid: TypeOid.int8, size: -1, format: 0 }, // as the shards described it
    ]);
    expect(values(client.frames[1])).toEqual(['2.3333333333333333', '8']);
    expect(client.tag()).toBe('SELECT 1');
  });

  it('NULL when no shard counted a value; float8 sums stay float8', () => {
    expect(
      values(
        average({ oid: TypeOid.numeric }, [
          [null, '1', '0'],
          [null, '0', '0'],
        ]).client.frames[1],
      ),
    ).toEqual([null, '1']);
    const { client } = average({ oid: TypeOid.float8 }, [
      ['1.5', '1', '1'],
      ['0.25', '2', '2'],
    ]);
    expect(describedColumns(client.frames[0])[0]).toMatchObject({ oid: TypeOid.float8, size: 8 });
    expect(values(client.frames[1])[0]).toBe('0.5833333333333334');
  });

  it('binary results: numeric out of int8 sums and counts', () => {
    const { client } = average(
      { oid: TypeOid.int8, format: 1 },
      [
        [i64(5n), i64(1n), i64(1n)],
        [i64(0n), i64(1n), i64(1n)],
      ],
      1,
    );
    expect(describedColumns(client.frames[0])[0]).toMatchObject({ oid: TypeOid.numeric, format: 1 });
    const row = client.frames[1];
    const length = row.readInt32BE(7);
    expect(numericBinaryToText(row.subarray(11, 11 + length))).toBe('2.5000000000000000');
  });

  it('refuses a single-precision sum with 0A000 before any row', () => {
    const { client } = average({ oid: TypeOid.float4 }, [['1.5', '1', '1']]);
    expect(client.types()).toBe('E');
    expect(client.errors()[0]).toMatchObject({ C: '0A000' });
  });
});

describe('ReplyMerger: HAVING on merged groups', () => {
  it('applies HAVING after combining, on merged and hidden aggregates; hidden columns never reach the client', () => {
    const client = new Client();
    // SELECT k, avg(v) FROM t GROUP BY k HAVING count(*) > 2 AND avg(v) <> 3 ORDER BY avg(v) DESC
    // run as SELECT k, sum(v) AS avg, count(v) AS h1, count(*) AS h2 FROM t GROUP BY k
    const merger = new ReplyMerger(
      2,
      spec({
        groupBy: [0],
        aggregates: [
          { column: 1, fn: 'avg', countColumn: 2 },
          { column: 3, fn: 'count' },
        ],
        orderBy: [{ column: 1, isDescending: true, isNullsFirst: true }],
        hiddenCount: 2,
        having: {
          kind: 'and',
          args: [
            {
              kind: 'compare',
              op: '>',
              left: { kind: 'column', column: 3 },
              right: { kind: 'constant', value: Buffer.from('2'), format: 0, typeOid: 0 },
            },
            {
              kind: 'compare',
              op: '<>',
              left: { kind: 'column', column: 1 },
              right: { kind: 'constant', value: Buffer.from('3'), format: 0, typeOid: TypeOid.numeric },
            },
          ],
        },
      }),
      client.emit,
    );
    const t = rowDescription([
      { oid: TypeOid.text },
      { oid: TypeOid.int8 },
      { oid: TypeOid.int8 },
      { oid: TypeOid.int8 },
    ]);
    merger.push(0, t);
    merger.push(1, t);
    merger.push(0, dataRow(['a', '3', '2', '2'])); // a: 3 rows, avg 4/3 → kept
    merger.push(1, dataRow(['a', '1', '1', '1']));
    merger.push(0, dataRow(['b', '4', '2', '2'])); // b: 2 rows → dropped by count(*) > 2 (each shard alone: no)
    merger.push(1, dataRow(['c', '6', '1', '2'])); // c: 3 rows, avg 9/3 = 3 → dropped by avg <> 3
    merger.push(0, dataRow(['c', '3', '2', '1']));
    merger.push(1, dataRow(['d', '20', '2', '2'])); // d: 3 rows, avg 7.5 → kept, first (DESC)
    merger.push(0, dataRow(['d', '10', '2', '1']));
    merger.push(0, C('SELECT 4'));
    merger.push(1, C('SELECT 3'));
    expect(describedColumns(client.frames[0]).map((c) => [c.name, c.oid])).toEqual([
      ['c0', TypeOid.text],
      ['c1', TypeOid.numeric],
    ]);
    expect(client.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([
      ['d', '7.5000000000000000'],
      ['a', '1.3333333333333333'],
    ]);
    expect(client.tag()).toBe('SELECT 2');
  });

  it('without GROUP BY: the one merged row passes or not', () => {
    const run = (threshold: string): Client => {
      const client = new Client();
      const merger = new ReplyMerger(
        2,
        spec({
          aggregates: [{ column: 0, fn: 'count' }],
          having: {
            kind: 'compare',
            op: '>',
            left: { kind: 'column', column: 0 },
            right: { kind: 'constant', value: Buffer.from(threshold), format: 0, typeOid: 0 },
          },
        }),
        client.emit,
      );
      for (const s of [0, 1]) {
        merger.push(s, rowDescription([{ oid: TypeOid.int8 }]));
        merger.push(s, dataRow(['3']));
        merger.push(s, C('SELECT 1'));
      }
      return client;
    };
    expect(run('5').rows()).toEqual(['6']);
    expect(run('6').rows()).toEqual([]);
    expect(run('6').tag()).toBe('SELECT 0');
  });
});

describe('ReplyMerger: hidden sort columns', () => {
  it('sorts on a hidden column and drops it from RowDescription and every row, with OFFSET and LIMIT', () => {
    const client = new Client();
    const merger = new ReplyMerger(
      2,
      spec({
        orderBy: [{ column: 1, isDescending: true, isNullsFirst: true }],
        hiddenCount: 1,
        offset: 1,
        limit: 3,
      }),
      client.emit,
    );
    const t = rowDescription([{ oid: TypeOid.text, name: 'name' }, { oid: TypeOid.int4 }]);
    merger.push(0, t);
    merger.push(1, t);
    for (const [s, name, key] of [
      [0, 'n', null],
      [1, 'x', '9'],
      [0, 'a', '7'],
      [1, 'y', '5'],
      [0, 'b', '3'],
      [1, 'z', '1'],
    ] as const) {
      merger.push(s, dataRow([name, key]));
    }
    merger.push(0, C('SELECT 3'));
    merger.push(1, C('SELECT 3'));
    expect(describedColumns(client.frames[0])).toEqual([
      { name: 'name', oid: TypeOid.text, size: -1, format: 0 },
    ]);
    const rows = client.frames.filter((f) => f[0] === 0x44).map(values);
    expect(rows).toEqual([['x'], ['a'], ['y']]);
    expect(client.tag()).toBe('SELECT 3');
  });

  it('a sort key counted from the end of the row (SELECT *: the width is known only from the rows)', () => {
    const client = new Client();
    const merger = new ReplyMerger(
      2,
      spec({ orderBy: [{ column: -1, isDescending: false, isNullsFirst: false }], hiddenCount: 1 }),
      client.emit,
    );
    const cols: Col[] = [{ oid: TypeOid.text }, { oid: TypeOid.text }, { oid: TypeOid.numeric }];
    merger.push(0, rowDescription(cols));
    merger.push(1, rowDescription(cols));
    merger.push(0, dataRow(['a', 'p', '-1.5']));
    merger.push(0, dataRow(['b', 'q', '10']));
    merger.push(1, dataRow(['c', 'r', '2']));
    merger.push(1, dataRow(['d', 's', null]));
    merger.push(0, C('SELECT 2'));
    merger.push(1, C('SELECT 2'));
    expect(client.frames.filter((f) => f[0] === 0x44).map(values)).toEqual([
      ['a', 'p'],
      ['c', 'r'],
      ['b', 'q'],
      ['d', 's'],
    ]);
  });

  it('rejects sort keys counted from the end beyond the hidden columns', () => {
    expect(
      () =>
        new ReplyMerger(
          1,
          spec({ orderBy: [{ column: -2, isDescending: false, isNullsFirst: false }], hiddenCount: 1 }),
          vi.fn(),
        ),
    ).toThrow(/bad ORDER BY column -2/);
    expect(() => new ReplyMerger(1, spec({ aggregates: [{ column: 0, fn: 'avg' }] }), vi.fn())).toThrow(
      /avg needs a count column/,
    );
  });
});

describe('ReplyMerger: merge queue bounds (flow control)', () => {
  function sortedMerger(shards: number): { client: Client; merger: ReplyMerger } {
    const client = new Client();
    const merger = new ReplyMerger(shards, spec({ orderBy: [sortKey(0)] }), client.emit);
    for (let s = 0; s < shards; s++) merger.push(s, rowDescription([{ oid: TypeOid.int4 }]));
    return { client, merger };
  }

  it('a queue waiting for another shard is full past the row bound and drained again at half of it', () => {
    const { client, merger } = sortedMerger(2);
    for (let i = 1; i <= MERGE_QUEUE_MAX_ROWS; i++) merger.push(0, dataRow([String(2 * i)]));
    expect(merger.isQueueFull(0)).toBe(false); // at the bound, not over it
    merger.push(0, dataRow([String(2 * MERGE_QUEUE_MAX_ROWS + 2)]));
    expect(merger.isQueueFull(0)).toBe(true);
    expect(merger.isQueueDrained(0)).toBe(false);
    // The shard the merge waits for has an empty queue: never full, so it is always read.
    expect(merger.isQueueFull(1)).toBe(false);
    expect(merger.isQueueDrained(1)).toBe(true);
    expect(client.rows()).toEqual([]);

    // Shard 1's first row lets shard 0's smaller rows out: half of the bound + 1 leave the queue, one row short.
    merger.push(1, dataRow([String(MERGE_QUEUE_MAX_ROWS + 1)]));
    expect(client.rows()).toHaveLength(MERGE_QUEUE_MAX_ROWS / 2 + 1);
    expect(merger.isQueueFull(0)).toBe(false);
    expect(merger.isQueueDrained(0)).toBe(false); // 5,001 rows left: between the marks
    merger.push(1, dataRow([String(MERGE_QUEUE_MAX_ROWS + 3)]));
    expect(merger.isQueueDrained(0)).toBe(true);

    merger.push(1, C('SELECT 2'));
    merger.push(0, C(`SELECT ${MERGE_QUEUE_MAX_ROWS + 1}`));
    expect(client.rows()).toHaveLength(MERGE_QUEUE_MAX_ROWS + 3);
    expect(client.tag()).toBe(`SELECT ${MERGE_QUEUE_MAX_ROWS + 3}`);
    expect(merger.isQueueDrained(0)).toBe(true);
  });

  it('wide rows fill the queue by bytes first', () => {
    const { merger } = sortedMerger(2);
    const pad = 'x'.repeat(1000);
    const bytesPerRow = dataRow(['100000', pad]).length;
    let rows = 0;
    while (!merger.isQueueFull(0)) merger.push(0, dataRow([String(100_000 + ++rows), pad]));
    expect(rows).toBe(Math.floor(MERGE_QUEUE_MAX_BYTES / bytesPerRow) + 1);
    expect(rows).toBeLessThan(MERGE_QUEUE_MAX_ROWS);
  });

  it('a failed statement or a reached LIMIT drops the queues: drained', () => {
    const failed = sortedMerger(2).merger;
    for (let i = 0; i <= MERGE_QUEUE_MAX_ROWS; i++) failed.push(0, dataRow([String(i)]));
    expect(failed.isQueueFull(0)).toBe(true);
    failed.push(
      1,
      errorFrame([
        ['S', 'ERROR'],
        ['C', '57014'],
        ['M', 'canceled'],
      ]),
    );
    expect(failed.isQueueFull(0)).toBe(false);
    expect(failed.isQueueDrained(0)).toBe(true);

    const client = new Client();
    const limited = new ReplyMerger(2, spec({ orderBy: [sortKey(0)], limit: 3 }), client.emit);
    for (const s of [0, 1]) limited.push(s, rowDescription([{ oid: TypeOid.int4 }]));
    for (let i = 0; i <= MERGE_QUEUE_MAX_ROWS; i++) limited.push(0, dataRow([String(i)]));
    expect(limited.isQueueFull(0)).toBe(true);
    limited.push(1, dataRow(['100000']));
    expect(client.rows()).toEqual(['0', '1', '2']);
    expect(limited.isQueueDrained(0)).toBe(true);
  });

  it('streaming and GROUP BY keep no per-shard queue: never full', () => {
    const streamed = new ReplyMerger(2, spec({}), vi.fn());
    const grouped = new ReplyMerger(2, spec({ groupBy: [0], aggregates: [] }), vi.fn());
    for (const m of [streamed, grouped]) {
      for (const s of [0, 1]) m.push(s, rowDescription([{ oid: TypeOid.int4 }]));
      for (let i = 0; i <= MERGE_QUEUE_MAX_ROWS; i++) m.push(0, dataRow([String(i)]));
      expect(m.isQueueFull(0)).toBe(false);
      expect(m.isQueueDrained(0)).toBe(true);
    }
  });
});

// Unit tests for COPY … TO STDOUT across shards (CopyOutMerge, through ReplyMerger and on its own): one CopyOutResponse,
// the data of every shard, a HEADER line once, one binary file header and trailer, one CopyDone, COPY n summed.
import { describe, expect, it } from 'vitest';
import { CopyOutMerge } from '../../../src/execute/copy-out-merge.js';
import { PASS_THROUGH_SPEC } from '../../../src/execute/merge-spec.js';
import { ReplyMerger } from '../../../src/execute/reply-merger.js';
import { Backend } from '../../../src/protocol/codes.js';
import { commandComplete, Emitted, frame } from './merge-frames.js';

const copyOutResponse = (format: number): Buffer =>
  frame(Backend.CopyOutResponse, Buffer.from([format, 0, 1, 0, format]));
const copyData = (data: Buffer | string): Buffer => frame(Backend.CopyData, Buffer.from(data));
const copyDone = frame(Backend.CopyDone);
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const binaryHeader = Buffer.concat([SIGNATURE, Buffer.alloc(8)]); // flags 0, no extension
const TRAILER = Buffer.from([0xff, 0xff]);

function copyFromShards(shardLines: string[][], copyOutHeader: boolean): Emitted {
  const client = new Emitted();
  const merger = new ReplyMerger(shardLines.length, { ...PASS_THROUGH_SPEC, copyOutHeader }, client.emit);
  shardLines.forEach((lines, shard) => {
    merger.push(shard, copyOutResponse(0));
    for (const line of lines) merger.push(shard, copyData(line));
    merger.push(shard, copyDone);
    merger.push(shard, commandComplete(`COPY ${lines.length - (copyOutHeader ? 1 : 0)}`));
  });
  expect(merger.isDone).toBe(true);
  expect(merger.hasFailed).toBe(false);
  return client;
}

describe('COPY TO STDOUT across shards', () => {
  it('WITH HEADER: the header line once, then every shard’s rows', () => {
    const client = copyFromShards(
      [
        ['id,name\n', '1,a\n', '3,c\n'],
        ['id,name\n', '2,b\n'],
      ],
      true,
    );
    expect(client.kinds).toBe('HddddcC');
    const data = client.frames.filter((f) => f[0] === Backend.CopyData).map((f) => f.toString('utf8', 5));
    expect(data).toEqual(['id,name\n', '1,a\n', '3,c\n', '2,b\n']);
    expect(client.frames.at(-1)?.toString('utf8', 5, 11)).toBe('COPY 3');
  });

  it('without HEADER: each shard’s first line is data like the others', () => {
    const client = copyFromShards([['1\n'], ['2\n'], ['3\n']], false);
    const data = client.frames.filter((f) => f[0] === Backend.CopyData).map((f) => f.toString('utf8', 5));
    expect(data).toEqual(['1\n', '2\n', '3\n']);
    expect(client.kinds).toBe('HdddcC');
  });

  it('binary with no rows: every shard sends header and trailer together; the client gets one of each', () => {
    const client = new Emitted();
    const copy = new CopyOutMerge(2, false, client.emit);
    copy.start(copyOutResponse(1));
    copy.onData(0, copyData(Buffer.concat([binaryHeader, TRAILER])));
    copy.onData(1, copyData(Buffer.concat([binaryHeader, TRAILER])));
    copy.onDone();
    copy.onDone();
    expect(client.frames.map((f) => f.subarray(5))).toEqual([binaryHeader]); // trailer held back
    copy.finish();
    expect(client.frames.map((f) => f.subarray(5))).toEqual([binaryHeader, TRAILER, Buffer.alloc(0)]);
    expect(client.kinds).toBe('ddc');
  });

  it('sends no CopyDone when no shard sent one', () => {
    const client = new Emitted();
    const copy = new CopyOutMerge(2, false, client.emit);
    copy.onData(0, copyData('x\n'));
    copy.finish();
    expect(client.kinds).toBe('d');
  });
});

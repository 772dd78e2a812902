// The Bind codec (protocol/bind.ts): decoded as PostgreSQL's exec_bind_message reads it — a malformed Bind is an
// ERROR 08P01 (22023 for an unknown format code) — and rebuilt for rewritten requests.
import { describe, expect, it } from 'vitest';
import {
  bindValueAt,
  decodeBind,
  encodeBind,
  encodeParse,
  parseParamTypes,
} from '../../../src/protocol/bind.js';
import { PgError } from '../../../src/errors/pg-error.js';

/** A Bind frame from its body parts (the length word is filled in). */
function bindFrame(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = 0x42;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const GOOD = bindFrame(
  Buffer.from('p\0s\0'),
  Buffer.from([0, 1, 0, 0]), // one format code: text
  Buffer.from([0, 3]),
  Buffer.from([0, 0, 0, 1]),
  Buffer.from('a'),
  Buffer.from([0xff, 0xff, 0xff, 0xff]),
  Buffer.from([0, 0, 0, 1]),
  Buffer.from('c'),
  Buffer.from([0, 1, 0, 1]), // results: one format code, binary
);

function errorOf(frame: Buffer): { code: string; message: string } | null {
  try {
    decodeBind(frame);
    return null;
  } catch (err) {
    if (!(err instanceof PgError)) throw err;
    return { code: err.code, message: err.message };
  }
}

describe('decodeBind', () => {
  it('reads names, parameters (formats spread out) and result formats', () => {
    const bind = decodeBind(GOOD);
    expect(bind.portal).toBe('p');
    expect(bind.statement).toBe('s');
    expect(bind.values.map((v) => v?.toString() ?? null)).toEqual(['a', null, 'c']);
    expect(bind.formats).toEqual([0, 0, 0]);
    expect([...bind.resultFormats]).toEqual([0, 1, 0, 1]);
  });

  it('spreads mixed per-parameter format codes, and all-text lists are the right length for each count', () => {
    const mixed = bindFrame(
      Buffer.from('\0\0'),
      Buffer.from([0, 2, 0, 1, 0, 0]), // two codes: binary, text
      Buffer.from([0, 2, 0, 0, 0, 1, 0x41, 0, 0, 0, 1, 0x42]),
      Buffer.from([0, 0]),
    );
    expect(decodeBind(mixed).formats).toEqual([1, 0]);
    const oneBinary = bindFrame(
      Buffer.from('\0\0'),
      Buffer.from([0, 1, 0, 1]),
      Buffer.from([0, 2, 0, 0, 0, 1, 0x41, 0, 0, 0, 1, 0x42]),
      Buffer.from([0, 0]),
    );
    expect(decodeBind(oneBinary).formats).toEqual([1, 1]);
    for (const count of [0, 1, 2, 3, 2, 1, 300]) {
      const values = Buffer.concat(Array.from({ length: count }, () => Buffer.from([0, 0, 0, 1, 0x41])));
      const count16 = Buffer.from([count >> 8, count & 0xff]);
      const frame = bindFrame(Buffer.from('\0\0'), Buffer.from([0, 0]), count16, values, Buffer.from([0, 0]));
      expect(decodeBind(frame).formats).toEqual(new Array(count).fill(0));
    }
  });

  it('answers a truncated Bind with 08P01 "insufficient data left in message"', () => {
    for (const cut of [10, 12, 16, GOOD.length - 3]) {
      expect(errorOf(GOOD.subarray(0, cut))).toEqual({
        code: '08P01',
        message: 'insufficient data left in message',
      });
    }
  });

  it('answers format codes not matching the parameters, trailing bytes and unknown codes as PostgreSQL does', () => {
    const twoFormatsThreeParams = bindFrame(Buffer.from('\0\0'), Buffer.from([0, 2, 0, 0, 0, 0, 0, 3]));
    expect(errorOf(twoFormatsThreeParams)).toEqual({
      code: '08P01',
      message: 'bind message has 2 parameter formats but 3 parameters',
    });
    expect(errorOf(Buffer.concat([GOOD, Buffer.from([0])]))?.message).toBe('invalid message format');
    const formatTwo = bindFrame(Buffer.from('\0\0'), Buffer.from([0, 1, 0, 2, 0, 1, 0, 0, 0, 1, 0x41, 0, 0]));
    expect(errorOf(formatTwo)).toEqual({ code: '22023', message: 'unsupported format code: 2' });
    expect(errorOf(Buffer.from([0x42, 0, 0, 0, 6, 0x70]))?.message).toBe('invalid string in message');
  });
});

describe('bindValueAt (one parameter located in place, the frame checked as decodeBind checks it)', () => {
  /** What bindValueAt says of parameter `index`, or its error — in decodeBind's terms. */
  function located(frame: Buffer, index: number): unknown {
    try {
      const at = bindValueAt(frame, index);
      if (at === null) return 'absent';
      return { value: at.start < 0 ? null : frame.toString('latin1', at.start, at.end), format: at.format };
    } catch (err) {
      if (!(err instanceof PgError)) throw err;
      return { code: err.code, message: err.message };
    }
  }
  /** decodeBind's answer for parameter `index`, in the same terms. */
  function decoded(frame: Buffer, index: number): unknown {
    const error = errorOf(frame);
    if (error !== null) return error;
    const bind = decodeBind(frame);
    if (index >= bind.values.length) return 'absent';
    return { value: bind.values[index]?.toString('latin1') ?? null, format: bind.formats[index] };
  }
  const mixed = bindFrame(
    Buffer.from('\0\0'),
    Buffer.from([0, 2, 0, 1, 0, 0]), // two codes: binary, text
    Buffer.from([0, 2, 0, 0, 0, 1, 0x41, 0, 0, 0, 1, 0x42]),
    Buffer.from([0, 0]),
  );
  const oneBinary = bindFrame(
    Buffer.from('\0\0'),
    Buffer.from([0, 1, 0, 1]),
    Buffer.from([0, 2, 0, 0, 0, 1, 0x41, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0, 0]),
  );
  const frames = [GOOD, mixed, oneBinary];
  // Every malformed frame the decodeBind tests use, and every truncation of the good ones.
  for (const f of [GOOD, mixed, oneBinary])
    for (let cut = 5; cut < f.length; cut++) frames.push(f.subarray(0, cut));
  frames.push(Buffer.concat([GOOD, Buffer.from([0])]));
  frames.push(bindFrame(Buffer.from('\0\0'), Buffer.from([0, 2, 0, 0, 0, 0, 0, 3])));
  frames.push(bindFrame(Buffer.from('\0\0'), Buffer.from([0, 1, 0, 2, 0, 1, 0, 0, 0, 1, 0x41, 0, 0])));
  frames.push(bindFrame(Buffer.from('\0\0'), Buffer.from([0, 1, 0, 2, 0, 0, 0, 0]))); // code 2, no parameters
  frames.push(bindFrame(Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0]))); // length -2
  frames.push(bindFrame(Buffer.from('\0\0'), Buffer.from([0, 0, 0xff, 0xff, 0, 0]))); // -1 parameters

  it('finds each parameter decodeBind finds, and refuses each frame it refuses with the same error', () => {
    for (const frame of frames)
      for (const index of [0, 1, 2, 3])
        expect(located(frame, index), frame.toString('hex')).toEqual(decoded(frame, index));
    expect(located(GOOD, 1)).toEqual({ value: null, format: 0 });
    expect(located(mixed, 0)).toEqual({ value: 'A', format: 1 });
  });
});

describe('encodeBind and encodeParse', () => {
  it('rebuild Parse and Bind for a shard from the originals', () => {
    const parse = encodeParse('select $1, $2', [23, 25, 20], [3, 1]);
    expect(parseParamTypes(parse)).toEqual([20, 23]);
    const rebuilt = decodeBind(encodeBind(decodeBind(GOOD), [3, 2]));
    expect(rebuilt.portal).toBe('p');
    expect(rebuilt.statement).toBe('');
    expect(rebuilt.values.map((v) => v?.toString() ?? null)).toEqual(['c', null]);
    expect(rebuilt.formats).toEqual([0, 0]);
    expect([...rebuilt.resultFormats]).toEqual([0, 1, 0, 1]);
  });
});

describe('parseParamTypes (a Parse as exec_parse_message reads it)', () => {
  /** A Parse frame: type byte, length, then `body`. */
  function parseFrame(body: Buffer): Buffer {
    const head = Buffer.alloc(5);
    head[0] = 0x50;
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }
  const names = Buffer.from('s\0select $1\0', 'latin1');
  const refusal = (frame: Buffer): { code: string; message: string } | null => {
    try {
      parseParamTypes(frame);
      return null;
    } catch (err) {
      expect(err).toBeInstanceOf(PgError);
      const e = err as PgError;
      expect(e.severity).toBe('ERROR'); // the session goes on, as in PostgreSQL
      return { code: e.code, message: e.message };
    }
  };

  it('reads the type OIDs, the count unsigned', () => {
    const body = Buffer.concat([names, Buffer.from([0, 2, 0, 0, 0, 23, 0, 0, 0, 25])]);
    expect(parseParamTypes(parseFrame(body))).toEqual([23, 25]);
    expect(parseParamTypes(parseFrame(Buffer.concat([names, Buffer.from([0, 0])])))).toEqual([]);
  });

  it('refuses a malformed Parse with ERROR 08P01 and PostgreSQL’s message, never a RangeError', () => {
    expect(refusal(parseFrame(names))).toEqual({
      code: '08P01',
      message: 'insufficient data left in message',
    });
    expect(refusal(parseFrame(Buffer.concat([names, Buffer.from([0, 2, 0, 0, 0, 23])])))).toEqual({
      code: '08P01',
      message: 'insufficient data left in message',
    });
    expect(refusal(parseFrame(Buffer.concat([names, Buffer.from([0x80, 0])])))).toEqual({
      code: '08P01',
      message: 'insufficient data left in message',
    });
    expect(refusal(parseFrame(Buffer.concat([names, Buffer.from([0, 0, 7])])))).toEqual({
      code: '08P01',
      message: 'invalid message format',
    });
    expect(refusal(parseFrame(Buffer.from('s\0select 1', 'latin1')))).toEqual({
      code: '08P01',
      message: 'invalid string in message',
    });
  });
});

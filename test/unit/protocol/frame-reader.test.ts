// Unit tests for FrameReader: framing at every byte boundary, bad lengths, the size cap.
import { describe, expect, it } from 'vitest';
import { FrameReader } from '../../../src/protocol/frame-reader.js';

function msg(type: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const MESSAGES = [
  msg('Q', 'select 1\0'),
  msg('S'), // body-less
  msg('P', 'stmt\0select $1\0\0\0'),
  msg('B', Buffer.alloc(300, 7)), // longer than most chunks below
  msg('H'),
  msg('X'),
];
const STREAM = Buffer.concat(MESSAGES);

interface Collected {
  frames: { type: number; frame: Buffer }[];
  errors: string[];
}

function feed(reader: FrameReader, chunks: Buffer[]): Collected {
  const out: Collected = { frames: [], errors: [] };
  for (const c of chunks) {
    // The reader may hand out views into its input: pass copies so reuse of a chunk can't mask a bug.
    const err = reader.push(Buffer.from(c), (type, frame) =>
      out.frames.push({ type, frame: Buffer.from(frame) }),
    );
    if (err !== null) out.errors.push(err);
  }
  return out;
}

const EXPECTED = MESSAGES.map((m) => `${m[0]}:${m.toString('hex')}`).join(' ');

/** Compared as one string: vitest's deep equality on hundreds of Buffers is slow. */
function expectAllFrames(got: Collected): void {
  expect(got.errors).toEqual([]);
  expect(got.frames.map((f) => `${f.type}:${f.frame.toString('hex')}`).join(' ')).toBe(EXPECTED);
}

describe('FrameReader framing', () => {
  it('yields every frame from one chunk', () => {
    const reader = new FrameReader(1 << 20);
    expectAllFrames(feed(reader, [STREAM]));
    expect(reader.hasPartial).toBe(false);
  });

  it('yields the same frames when the stream is split at any single point', () => {
    for (let i = 1; i < STREAM.length; i++) {
      const reader = new FrameReader(1 << 20);
      expectAllFrames(feed(reader, [STREAM.subarray(0, i), STREAM.subarray(i)]));
      expect(reader.hasPartial).toBe(false);
    }
  });

  it('yields the same frames when split at any two points', () => {
    for (let i = 1; i < STREAM.length; i += 3) {
      for (let j = i + 1; j < STREAM.length; j += 5) {
        const reader = new FrameReader(1 << 20);
        expectAllFrames(feed(reader, [STREAM.subarray(0, i), STREAM.subarray(i, j), STREAM.subarray(j)]));
      }
    }
  });

  it('yields the same frames when fed one byte at a time', () => {
    const reader = new FrameReader(1 << 20);
    const chunks = [...STREAM].map((b) => Buffer.from([b]));
    expectAllFrames(feed(reader, chunks));
  });

  it('keeps a partial frame until it completes and reports it as partial meanwhile', () => {
    const reader = new FrameReader(1 << 20);
    const first = feed(reader, [STREAM.subarray(0, 7)]);
    expect(first.frames).toEqual([]);
    expect(reader.hasPartial).toBe(true);
    const rest = feed(reader, [STREAM.subarray(7)]);
    expect(rest.frames.map((f) => f.frame)).toEqual(MESSAGES);
  });
});

describe('FrameReader errors', () => {
  it('rejects a length below 4', () => {
    for (const len of [0, 3, -1]) {
      const bad = Buffer.from([0x51, 0, 0, 0, 0]);
      bad.writeInt32BE(len, 1);
      const got = feed(new FrameReader(1 << 20), [bad]);
      expect(got.errors).toHaveLength(1);
      expect(got.errors[0]).toContain(`invalid length ${len}`);
      expect(got.frames).toEqual([]);
    }
  });

  it('rejects a length below 4 whose header arrives split across chunks', () => {
    const bad = Buffer.from([0x51, 0, 0, 0, 2]);
    const got = feed(new FrameReader(1 << 20), [bad.subarray(0, 2), bad.subarray(2)]);
    expect(got.errors).toHaveLength(1);
    expect(got.errors[0]).toContain('invalid length 2');
  });

  it('rejects a bad frame after good ones, having delivered the good ones', () => {
    const bad = Buffer.from([0x44, 0, 0, 0, 1]);
    const got = feed(new FrameReader(1 << 20), [Buffer.concat([MESSAGES[0], bad])]);
    expect(got.frames.map((f) => f.frame)).toEqual([MESSAGES[0]]);
    expect(got.errors).toHaveLength(1);
  });

  it('rejects a frame over the cap, naming its size and the limit', () => {
    const head = Buffer.from([0x51, 0, 0, 0, 0]);
    head.writeInt32BE(5000, 1);
    const got = feed(new FrameReader(1024), [head]);
    expect(got.errors).toHaveLength(1);
    expect(got.errors[0]).toContain('5001 bytes');
    expect(got.errors[0]).toContain('1024');
    expect(got.errors[0]).toContain('"Q"');
  });

  it('rejects a 0x7fffffff length at once, before any body arrives', () => {
    const head = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]);
    const got = feed(new FrameReader(64 * 1024 * 1024), [head]);
    expect(got.errors).toHaveLength(1);
    expect(got.errors[0]).toContain(`${0x7fffffff + 1} bytes`);
  });

  it('rejects an oversized frame whose header is split across chunks', () => {
    const head = Buffer.from([0x50, 0, 0, 0x10, 0]);
    for (let i = 1; i < 5; i++) {
      const got = feed(new FrameReader(1024), [MESSAGES[1], head.subarray(0, i), head.subarray(i)]);
      expect(got.frames).toHaveLength(1);
      expect(got.errors).toHaveLength(1);
      expect(got.errors[0]).toContain(`${0x1000 + 1} bytes`);
    }
  });

  it('accepts a frame exactly at the cap and names a non-printable type in hex', () => {
    const exact = msg('d', Buffer.alloc(1024 - 5));
    const ok = feed(new FrameReader(1024), [exact]);
    expect(ok.errors).toEqual([]);
    expect(ok.frames).toHaveLength(1);
    const over = Buffer.from([0x01, 0, 0, 0x10, 0]);
    expect(feed(new FrameReader(1024), [over]).errors[0]).toContain('0x1');
  });
});

describe('FrameReader checks before buffering', () => {
  it('refuses a type byte at once, before its length arrives (a startup packet after login starts with 0)', () => {
    const reader = new FrameReader(1 << 20);
    reader.typeCheck = (type) => (type === 0 ? 'invalid frontend message type 0' : null);
    const got = feed(reader, [MESSAGES[0], Buffer.from([0])]);
    expect(got.frames).toHaveLength(1);
    expect(got.errors).toEqual(['invalid frontend message type 0']);
  });

  it('checks the type of a frame that follows a partial one, at whichever chunk boundary', () => {
    const stream = Buffer.concat([MESSAGES[3], Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])]);
    for (let i = 1; i < stream.length; i++) {
      const reader = new FrameReader(1 << 20);
      reader.typeCheck = (type) => (type === 0 ? 'zero' : null);
      const got = feed(reader, [stream.subarray(0, i), stream.subarray(i)]);
      expect(got.frames.map((f) => f.frame)).toEqual([MESSAGES[3]]);
      expect(got.errors[0]).toBe('zero'); // (the test feeds on after it; a session stops reading)
    }
  });

  it('applies a cap changed between chunks (authentication, then requests)', () => {
    const reader = new FrameReader(1 << 20);
    reader.maxFrameBytes = 1025;
    const head = Buffer.from([0x70, 0, 0, 0, 0]);
    head.writeInt32BE(1025, 1);
    const got = feed(reader, [head]);
    expect(got.errors[0]).toContain('1026 bytes, over the 1025-byte limit');
  });
});

describe('FrameReader query size limit', () => {
  const big = msg('Q', `select '${'x'.repeat(200)}'\0`);
  const stream = Buffer.concat([
    MESSAGES[0],
    big,
    MESSAGES[1],
    msg('P', `s\0${'y'.repeat(300)}\0\0\0`),
    MESSAGES[5],
  ]);

  function run(chunks: Buffer[]): { got: Collected; skipped: string[] } {
    const reader = new FrameReader(1 << 20);
    reader.skipQueriesOverBytes = 100;
    const skipped: string[] = [];
    reader.onOversized = (type, total, start) =>
      skipped.push(`${String.fromCharCode(type)}:${total}:${start[0]}`);
    return { got: feed(reader, chunks), skipped };
  }

  it('reports Query and Parse frames over the limit and delivers the frames around them', () => {
    const { got, skipped } = run([stream]);
    expect(got.errors).toEqual([]);
    expect(got.frames.map((f) => String.fromCharCode(f.type)).join('')).toBe('QSX');
    expect(skipped).toEqual([`Q:${big.length}:81`, `P:${5 + 2 + 300 + 1 + 2}:80`]);
  });

  it('skips the same way at every chunk boundary and one byte at a time', () => {
    const whole = run([stream]);
    for (let i = 1; i < stream.length; i++) {
      const split = run([stream.subarray(0, i), stream.subarray(i)]);
      expect(split.got.frames.map((f) => f.frame)).toEqual(whole.got.frames.map((f) => f.frame));
      expect(split.skipped).toEqual(whole.skipped);
    }
    const bytes = run([...stream].map((b) => Buffer.from([b])));
    expect(bytes.got.frames.map((f) => f.frame)).toEqual(whole.got.frames.map((f) => f.frame));
    expect(bytes.skipped).toEqual(whole.skipped);
  });

  it('never buffers a skipped body: nothing is held while its bytes go by', () => {
    const reader = new FrameReader(1 << 30);
    reader.skipQueriesOverBytes = 100;
    reader.onOversized = () => undefined;
    const head = Buffer.from([0x51, 0, 0, 0, 0]);
    head.writeInt32BE(50_000_000, 1);
    const frames: number[] = [];
    expect(reader.push(head, (t) => frames.push(t))).toBeNull();
    for (let sent = 0; sent < 50_000_000 - 4 - 65536; sent += 65536) {
      reader.push(Buffer.alloc(65536), (t) => frames.push(t));
    }
    // Internal state: nothing collected for the skipped frame (parts stay empty).
    expect((reader as unknown as { partsLength: number }).partsLength).toBe(0);
    expect(frames).toEqual([]);
  });

  it('leaves Bind, CopyData and frames at the limit alone', () => {
    const reader = new FrameReader(1 << 20);
    reader.skipQueriesOverBytes = 100;
    reader.onOversized = () => {
      throw new Error('not oversized');
    };
    const atLimit = msg('Q', Buffer.alloc(95));
    const got = feed(reader, [msg('B', Buffer.alloc(500)), msg('d', Buffer.alloc(500)), atLimit]);
    expect(got.frames).toHaveLength(3);
  });
});

describe("FrameReader: PostgreSQL's length limits once logged in", () => {
  function pushHeader(type: number, len: number): { err: string | null; isSilent: boolean } {
    const reader = new FrameReader(64 * 1024 * 1024);
    reader.hasPgLengthLimits = true;
    const header = Buffer.alloc(5);
    header[0] = type;
    header.writeInt32BE(len, 1);
    const err = reader.push(header, () => undefined);
    return { err, isSilent: reader.isSilent };
  }

  it('flags a length below 4 as a silent close (PostgreSQL: COMMERROR, no reply)', () => {
    expect(pushHeader(0x51, 3)).toMatchObject({ isSilent: true });
    expect(pushHeader(0x51, -1).isSilent).toBe(true);
  });

  it("flags a Sync over 10,000 bytes and a Query over 1 GiB as silent; the proxy's own cap is not silent", () => {
    expect(pushHeader(0x53, 10_001).isSilent).toBe(true);
    expect(pushHeader(0x53, 10_000)).toEqual({ err: null, isSilent: false });
    expect(pushHeader(0x51, 0x7fffffff).isSilent).toBe(true);
    const overCap = pushHeader(0x51, 70 * 1024 * 1024);
    expect(overCap.err).toMatch(/limit/);
    expect(overCap.isSilent).toBe(false);
  });
});

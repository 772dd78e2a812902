// RequestBatch: flush points and the replies PostgreSQL would give when a request fails before reaching a server.
import { describe, expect, it } from 'vitest';
import { RequestBatch } from '../../../src/frontend/request-batch.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend } from '../../../src/protocol/codes.js';

const f = (type: number): Buffer => Buffer.from([type, 0, 0, 0, 4]);
const types = (buf: Buffer): string => {
  let out = '';
  for (let i = 0; i < buf.length; i += 1 + buf.readInt32BE(i + 1)) out += String.fromCharCode(buf[i]);
  return out;
};

describe('RequestBatch', () => {
  it('is a flush point only once a Sync, Query or Flush is queued', () => {
    const b = new RequestBatch();
    b.push(Frontend.Parse, f(Frontend.Parse));
    b.push(Frontend.Bind, f(Frontend.Bind));
    expect(b.isFlushPoint).toBe(false);
    b.push(Frontend.Flush, f(Frontend.Flush));
    expect(b.isFlushPoint).toBe(true);
    const taken = b.take();
    expect(taken.types).toEqual([Frontend.Parse, Frontend.Bind, Frontend.Flush]);
    expect(taken.readyCount).toBe(0);
    expect(b.isEmpty).toBe(true);
    expect(b.bytes).toBe(0);
  });

  it('answers a failed pipeline with one error and ReadyForQuery per Sync, and skips an unclosed tail', () => {
    const b = new RequestBatch();
    for (const t of [
      Frontend.Parse,
      Frontend.Bind,
      Frontend.Execute,
      Frontend.Sync,
      Frontend.Bind,
      Frontend.Execute,
      Frontend.Sync,
      Frontend.Bind,
    ]) {
      b.push(t, f(t));
    }
    const { replies, isSkippingToSync } = b.failReplies(PgError.poolTimeout('db', 'u', 0, 10), 0x49);
    expect(types(replies)).toBe('EZEZE');
    expect(isSkippingToSync).toBe(true);
    expect(b.isEmpty).toBe(true);
  });

  it('answers a simple Query with error + ReadyForQuery and nothing to skip', () => {
    const b = new RequestBatch();
    b.push(Frontend.Query, f(Frontend.Query));
    const { replies, isSkippingToSync } = b.failReplies(PgError.serverUnavailable(1, 'refused'), 0x49);
    expect(types(replies)).toBe('EZ');
    expect(isSkippingToSync).toBe(false);
  });
});

describe('RequestBatch as a queue', () => {
  /** A frame whose body names it, so order can be checked. */
  const named = (type: number, n: number): Buffer => {
    const out = Buffer.alloc(9);
    out[0] = type;
    out.writeInt32BE(8, 1);
    out.writeInt32BE(n, 5);
    return out;
  };
  const ids = (frames: Buffer[]): number[] => frames.map((f) => f.readInt32BE(5));

  it('keeps order through pushes, takes, drops and unshifts across the ring`s wrap-around and growth', () => {
    // A model array gets the same operations; seeded pseudo-random sequence (no Math.random: reproducible).
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const types = [
      Frontend.Parse,
      Frontend.Bind,
      Frontend.Execute,
      Frontend.Sync,
      Frontend.Query,
      Frontend.Flush,
    ];
    const b = new RequestBatch();
    let model: { type: number; frame: Buffer }[] = [];
    let next = 0;
    for (let step = 0; step < 3_000; step++) {
      const op = rand(10);
      if (op < 5) {
        const type = types[rand(types.length)];
        const frame = named(type, next++);
        b.push(type, frame);
        model.push({ type, frame });
      } else if (op < 7) {
        const n = rand(40);
        const got = b.takeFirst(n);
        const want = model.slice(0, n);
        model = model.slice(n);
        expect(ids(got.frames)).toEqual(ids(want.map((m) => m.frame)));
        expect(got.types).toEqual(want.map((m) => m.type));
        expect(got.readyCount).toBe(
          want.filter((m) => [Frontend.Sync, Frontend.Query, Frontend.FunctionCall].includes(m.type as never))
            .length,
        );
      } else if (op < 8) {
        const n = rand(3);
        b.dropFirst(n);
        model = model.slice(n);
      } else {
        const k = 1 + rand(24); // sometimes more than the free room: the ring grows
        const add = Array.from({ length: k }, () => {
          const type = types[rand(types.length)];
          return { type, frame: named(type, next++) };
        });
        b.unshift(
          add.map((a) => a.type),
          add.map((a) => a.frame),
        );
        model = [...add, ...model];
      }
      expect(b.length).toBe(model.length);
      expect(b.bytes).toBe(model.length * 9);
      expect(b.hasFlush).toBe(model.some((m) => m.type === Frontend.Flush));
      expect(b.readyCount).toBe(
        model.filter((m) => m.type === Frontend.Sync || m.type === Frontend.Query).length,
      );
      if (model.length > 0) {
        const i = rand(model.length);
        expect(b.typeAt(i)).toBe(model[i].type);
        expect(b.frameAt(i)).toBe(model[i].frame);
      }
    }
    const rest = b.take();
    expect(ids(rest.frames)).toEqual(ids(model.map((m) => m.frame)));
    expect(b.isEmpty).toBe(true);
  });

  it('finds the first request and peeks at it without taking it', () => {
    const b = new RequestBatch();
    for (const t of [Frontend.Parse, Frontend.Bind, Frontend.Sync, Frontend.Query]) b.push(t, f(t));
    expect(b.firstRequestLength()).toBe(3);
    const peeked = b.peek(3);
    expect(peeked.types).toEqual([Frontend.Parse, Frontend.Bind, Frontend.Sync]);
    expect(b.length).toBe(4);
    expect(b.isCopyOnly()).toBe(false);
    b.take();
    b.push(Frontend.CopyData, f(Frontend.CopyData));
    b.push(Frontend.CopyDone, f(Frontend.CopyDone));
    expect(b.isCopyOnly()).toBe(true);
    expect(b.firstRequestLength()).toBe(2); // no Sync/Query: all of it
  });

  it('hands over the peeked copies when the same frames are taken, and fresh ones when the front changed', () => {
    const b = new RequestBatch();
    for (let i = 0; i < 6; i++) b.push(i % 3 === 2 ? Frontend.Sync : Frontend.Bind, named(Frontend.Bind, i));
    const peeked = b.peek(3);
    const taken = b.takeFirst(3);
    expect(taken.types).toBe(peeked.types); // no second pair of arrays for the request just routed
    expect(taken.frames).toBe(peeked.frames);
    expect(ids(taken.frames)).toEqual([0, 1, 2]);
    expect(taken.readyCount).toBe(1);
    // Peeked, then the front replaced (a request rewritten in place): the take gets what is queued now.
    const second = b.peek(3);
    b.dropFirst(1);
    b.unshift([Frontend.Bind], [named(Frontend.Bind, 99)]);
    const rewritten = b.takeFirst(3);
    expect(rewritten.frames).not.toBe(second.frames);
    expect(ids(rewritten.frames)).toEqual([99, 4, 5]);
    expect(ids(second.frames)).toEqual([3, 4, 5]); // the peeker's copies are left as they were
  });

  it('calls onDrained once the queue is down to its low-water marks', () => {
    const b = new RequestBatch();
    for (let i = 0; i < 10; i++) b.push(Frontend.Query, f(Frontend.Query));
    let calls = 0;
    b.lowWaterFrames = 4;
    b.onDrained = () => calls++;
    b.takeFirst(3);
    expect(calls).toBe(0);
    b.takeFirst(3);
    expect(calls).toBe(1);
    b.takeFirst(4);
    expect(calls).toBe(1); // once: the session arms it again when it pauses again
  });

  it('calls onDrained when only an incomplete request is left, however large (it must be read to complete)', () => {
    const b = new RequestBatch();
    b.push(Frontend.Query, f(Frontend.Query));
    b.push(Frontend.Parse, Buffer.alloc(10_000));
    let calls = 0;
    b.lowWaterBytes = 100;
    b.onDrained = () => calls++;
    b.takeFirst(1);
    expect(calls).toBe(1);
  });
});

describe('RequestBatch.isWholeRequests (a Terminate after them lets them run first)', () => {
  function batchOf(types: number[]): RequestBatch {
    const b = new RequestBatch();
    for (const t of types) b.push(t, Buffer.from([t, 0, 0, 0, 4]));
    return b;
  }
  const { Query, Parse, Bind, Execute, Sync, Flush } = Frontend;

  it('is true for Queries and Sync-ended extended requests', () => {
    expect(batchOf([Query]).isWholeRequests).toBe(true);
    expect(batchOf([Parse, Bind, Execute, Sync, Query]).isWholeRequests).toBe(true);
  });

  it('is false for an open segment (PostgreSQL may skip what follows an error in it) or no request at all', () => {
    expect(batchOf([Parse, Bind, Execute]).isWholeRequests).toBe(false);
    expect(batchOf([Parse, Query]).isWholeRequests).toBe(false);
    expect(batchOf([Parse, Flush]).isWholeRequests).toBe(false);
    expect(batchOf([]).isWholeRequests).toBe(false);
  });
});

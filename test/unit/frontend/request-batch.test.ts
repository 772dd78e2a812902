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

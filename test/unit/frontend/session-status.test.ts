// SessionStatus: the transaction status the client is told (and the deadlock check's note of it), the replies to a
// request that cannot run with the skip-to-Sync they leave, and the end of that skip at the client's Sync.
import { describe, expect, it } from 'vitest';
import { SessionStatus } from '../../../src/frontend/session-status.js';
import { RequestBatch } from '../../../src/frontend/request-batch.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend, TxStatus } from '../../../src/protocol/codes.js';
import { WatchedSession } from '../../../src/txn/watched-session.js';

const f = (type: number): Buffer => Buffer.from([type, 0, 0, 0, 4]);
/** The message types of `buf`, with ReadyForQuery's status letter after its Z. */
const kinds = (buf: Buffer): string => {
  let out = '';
  for (let i = 0; i < buf.length; i += 1 + buf.readInt32BE(i + 1)) {
    out += String.fromCharCode(buf[i]);
    if (buf[i] === 0x5a) out += String.fromCharCode(buf[i + 5]);
  }
  return out;
};
const batchOf = (...types: number[]): RequestBatch => {
  const b = new RequestBatch();
  for (const t of types) b.push(t, f(t));
  return b;
};
const watch = (): { watched: WatchedSession; requests: () => number } => {
  let requests = 0;
  const watched = new WatchedSession(
    {
      id: 1,
      user: 'u',
      database: 'd',
      isTransactionMode: true,
      servers: () => [],
      queuedCheckouts: () => [],
      serversInCheckout: () => [],
      failCheckout: () => false,
    },
    () => requests++,
  );
  return { watched, requests: () => requests };
};

describe('SessionStatus', () => {
  it('starts at startup, idle, not skipping', () => {
    const s = new SessionStatus();
    expect(s.state).toBe('startup');
    expect(s.isReady).toBe(false);
    expect(s.isClosed).toBe(false);
    expect(s.txStatus).toBe(TxStatus.Idle);
    expect(s.isSkippingToSync).toBe(false);
    s.state = 'ready';
    expect(s.isReady).toBe(true);
    s.state = 'closed';
    expect(s.isClosed).toBe(true);
    expect(s.isReady).toBe(false);
  });

  it('tells the deadlock check when the transaction the client was told of starts and ends', () => {
    const s = new SessionStatus();
    const { watched } = watch();
    s.watched = watched;
    s.tell(TxStatus.InTransaction);
    expect(s.txStatus).toBe(TxStatus.InTransaction);
    expect(watched.transactionSeq).toBe(1);
    const startedAt = watched.transactionStartMs;
    expect(startedAt).toBeGreaterThan(0);
    s.tell(TxStatus.Failed); // the same transaction, failed
    expect(watched.transactionSeq).toBe(1);
    expect(watched.transactionStartMs).toBe(startedAt);
    s.tell(TxStatus.Idle);
    expect(s.txStatus).toBe(TxStatus.Idle);
    expect(watched.transactionStartMs).toBe(0);
    s.tell(TxStatus.InTransaction);
    expect(watched.transactionSeq).toBe(2);
  });

  it('changes status without a watch (one shard, or no deadlock check)', () => {
    const s = new SessionStatus();
    s.tell(TxStatus.Failed);
    expect(s.txStatus).toBe(TxStatus.Failed);
  });

  it('answers a failed request with the status the client was told and skips the tail left without Sync', () => {
    const s = new SessionStatus();
    s.tell(TxStatus.InTransaction);
    const b = batchOf(Frontend.Parse, Frontend.Bind, Frontend.Sync, Frontend.Bind, Frontend.Execute);
    const replies = s.failReplies(b, PgError.poolTimeout('d', 'u', 0, 10));
    expect(kinds(replies)).toBe('EZTE');
    expect(s.isSkippingToSync).toBe(true);
    expect(b.isEmpty).toBe(true);
  });

  it('fails only the first `count` frames, and a request closed by its Sync leaves nothing to skip', () => {
    const s = new SessionStatus();
    s.isSkippingToSync = true; // an earlier skip: over once an error is answered up to a Sync
    const b = batchOf(Frontend.Bind, Frontend.Execute, Frontend.Sync, Frontend.Query);
    const replies = s.failReplies(b, PgError.featureNotSupported('no'), 3);
    expect(kinds(replies)).toBe('EZI');
    expect(s.isSkippingToSync).toBe(false);
    expect(b.length).toBe(1); // the pipelined Query stays queued
  });

  it('drops frames while skipping and ends the skip at Sync with ReadyForQuery of the current status', () => {
    const s = new SessionStatus();
    s.tell(TxStatus.Failed);
    s.isSkippingToSync = true;
    expect(s.skipped(false)).toBeNull();
    expect(s.isSkippingToSync).toBe(true);
    const ready = s.skipped(true);
    expect(ready === null ? '' : kinds(ready)).toBe('ZE');
    expect(s.isSkippingToSync).toBe(false);
  });
});

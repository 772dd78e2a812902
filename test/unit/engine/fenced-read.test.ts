// The readers' side of atomic visibility without sockets: how a fan-out request is sent so its snapshot shows early
// (a simple-Query SELECT as Parse/Bind/Flush/Describe/Execute/Sync, a Flush after an extended Bind, other requests
// unchanged), which reply shows each shard's snapshot, and the 40001 message.
import { describe, expect, it } from 'vitest';
import {
  fenceTimeoutError,
  SnapshotSignal,
  snapshotRequest,
  SnapshotWatch,
} from '../../../src/engine/fenced-read.js';
import { Backend, Frontend } from '../../../src/protocol/codes.js';
import { query } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';

const parse = new MessageWriter(32).cstring('s1').cstring('select 1').int16(0).frame(Frontend.Parse);
const bind = new MessageWriter(32).cstring('').cstring('s1').int16(0).int16(0).int16(0).frame(Frontend.Bind);
const execute = new MessageWriter(16).cstring('').int32(0).frame(Frontend.Execute);
const sync = Buffer.from([Frontend.Sync, 0, 0, 0, 4]);

describe('snapshotRequest', () => {
  it('sends a simple-Query plain SELECT as Parse/Bind/Flush/Describe/Execute/Sync of the unnamed statement', () => {
    const r = snapshotRequest([Frontend.Query], [query('select sum(x) from t')], true);
    expect(r?.signal).toBe(SnapshotSignal.Bind);
    expect(r?.isRewrittenQuery).toBe(true);
    expect(r?.types).toEqual([
      Frontend.Parse,
      Frontend.Bind,
      Frontend.Flush,
      Frontend.Describe,
      Frontend.Execute,
      Frontend.Sync,
    ]);
    const p = r?.frames[0] as Buffer;
    expect(p.readInt32BE(1)).toBe(p.length - 1);
    expect(p.subarray(5).toString('utf8')).toBe('\0select sum(x) from t\0\0\0');
    for (const f of r?.frames ?? []) expect(f.readInt32BE(1)).toBe(f.length - 1);
  });

  it('adds a Flush right after an extended request’s Bind, and keeps the client’s frames', () => {
    const r = snapshotRequest(
      [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync],
      [parse, bind, execute, sync],
      true,
    );
    expect(r?.signal).toBe(SnapshotSignal.Bind);
    expect(r?.isRewrittenQuery).toBe(false);
    expect(r?.types).toEqual([
      Frontend.Parse,
      Frontend.Bind,
      Frontend.Flush,
      Frontend.Execute,
      Frontend.Sync,
    ]);
    expect(r?.frames[1]).toBe(bind);
  });

  it('leaves other reads as they are, released at their first result; nothing for a request without Bind', () => {
    const copy = snapshotRequest([Frontend.Query], [query('copy t to stdout')], false);
    expect(copy?.signal).toBe(SnapshotSignal.QueryResult);
    expect(copy?.isRewrittenQuery).toBe(false);
    const explain = snapshotRequest(
      [Frontend.Bind, Frontend.Execute, Frontend.Sync],
      [bind, execute, sync],
      false,
    );
    expect(explain?.signal).toBe(SnapshotSignal.ExecuteResult);
    expect(snapshotRequest([Frontend.Parse, Frontend.Sync], [parse, sync], true)).toBeNull();
  });
});

describe('SnapshotWatch', () => {
  it('calls back once every shard sent BindComplete, and drops the proxy’s own ParseComplete/BindComplete', () => {
    let taken = 0;
    const w = new SnapshotWatch(2, SnapshotSignal.Bind, true, () => taken++);
    expect(w.see(0, Backend.ParseComplete)).toBe(true);
    expect(w.see(0, Backend.NoticeResponse)).toBe(false);
    expect(w.see(0, Backend.BindComplete)).toBe(true);
    expect(taken).toBe(0);
    expect(w.see(1, Backend.ErrorResponse)).toBe(false); // an error ends that shard's part too
    expect(taken).toBe(1);
    w.see(1, Backend.ReadyForQuery);
    expect(taken).toBe(1);
  });

  it('does not take a Describe’s RowDescription for an Execute’s result, but does for a simple Query', () => {
    let taken = 0;
    const ext = new SnapshotWatch(1, SnapshotSignal.ExecuteResult, false, () => taken++);
    ext.see(0, Backend.BindComplete);
    ext.see(0, Backend.RowDescription);
    expect(taken).toBe(0);
    expect(ext.see(0, Backend.DataRow)).toBe(false);
    expect(taken).toBe(1);
    const simple = new SnapshotWatch(1, SnapshotSignal.QueryResult, false, () => taken++);
    simple.see(0, Backend.RowDescription);
    expect(taken).toBe(2);
  });

  it('does nothing once disarmed', () => {
    let taken = 0;
    const w = new SnapshotWatch(1, SnapshotSignal.Bind, false, () => taken++);
    w.disarm();
    w.see(0, Backend.BindComplete);
    expect(taken).toBe(0);
  });
});

describe('fenceTimeoutError', () => {
  it('is a retryable 40001 naming the shard and the transaction holding it', () => {
    const err = fenceTimeoutError({ shard: 1, holders: ['tx7'], isSnapshotSlow: false }, 500);
    expect(err.code).toBe('40001');
    expect(err.message).toContain('atomic_visibility_timeout (500 ms)');
    expect(err.detail).toContain('shard 1 is held by cross-shard transaction tx7');
  });
});

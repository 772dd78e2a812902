// Fan-out backpressure without sockets: the sinks a Fanout hands its servers stop them (writeToClient false, resume
// kept) while the client is backpressured or while a shard's ORDER BY merge queue is full, resume them when the client
// drains or the queue is down to half, never pause a shard for its queue when shards run one after another, and never
// leave a shard paused after its last ReadyForQuery.
import { describe, expect, it } from 'vitest';
import type { ServerClient, ServerConnection } from '../../../src/backend/server-connection.js';
import { MERGE_QUEUE_MAX_ROWS } from '../../../src/execute/reply-merger.js';
import { PASS_THROUGH_SPEC, sortKey, type MergeSpec } from '../../../src/execute/merge-spec.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import { Fanout, type FanoutOwner } from '../../../src/frontend/fanout.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { Backend, TxStatus } from '../../../src/protocol/codes.js';
import { PgError } from '../../../src/errors/pg-error.js';

function rowDescription(oid: number): Buffer {
  return new MessageWriter(32)
    .int16(1)
    .cstring('n')
    .int32(0)
    .int16(0)
    .int32(oid)
    .int16(4)
    .int32(-1)
    .int16(0)
    .frame(Backend.RowDescription);
}

function dataRows(values: number[]): Buffer {
  return Buffer.concat(
    values.map((v) => {
      const text = Buffer.from(String(v));
      return new MessageWriter(16).int16(1).int32(text.length).bytes(text).frame(Backend.DataRow);
    }),
  );
}

const selectTag = (n: number): Buffer =>
  new MessageWriter(16).cstring(`SELECT ${n}`).frame(Backend.CommandComplete);

/** A client whose socket accepts writes (or not), counting rows and keeping the drain callback. */
class Owner implements FanoutOwner {
  isFlowing = true;
  rows = 0;
  drains: (() => void)[] = [];
  doneStatus: number | null = null;
  writeToClient(buf: Buffer): boolean {
    for (let p = 0; p < buf.length; p += 1 + buf.readInt32BE(p + 1))
      if (buf[p] === Backend.DataRow) this.rows++;
    return this.isFlowing;
  }
  onClientDrain(resume: () => void): void {
    this.drains.push(resume);
  }
  drain(): void {
    this.isFlowing = true;
    const drains = this.drains;
    this.drains = [];
    for (const d of drains) d();
  }
  onServerParameter(): void {}
  onServerLost(): void {}
  onFanoutDone(status: number): void {
    this.doneStatus = status;
  }
}

/** A server as ServerConnection.forward drives its client: paused when writeToClient says false. */
class FakeServer {
  isPaused = false;
  pendingReady = 1;
  constructor(readonly sink: ServerClient) {}
  send(buf: Buffer): void {
    if (this.sink.writeToClient(buf)) return;
    this.isPaused = true;
    this.sink.onClientDrain(() => {
      this.isPaused = false;
    });
  }
  ready(): void {
    this.pendingReady = 0;
    this.sink.onServerReady(this as unknown as ServerConnection, TxStatus.Idle);
  }
}

function fanout(spec: MergeSpec): { owner: Owner; f: Fanout; servers: FakeServer[] } {
  const owner = new Owner();
  const f = new Fanout(2, spec, owner);
  return { owner, f, servers: [0, 1].map((i) => new FakeServer(f.sinkFor(i))) };
}

const range = (from: number, count: number, step = 1): number[] =>
  Array.from({ length: count }, (_, i) => from + i * step);

describe('Fanout backpressure', () => {
  it('stops every shard while the client is backpressured and resumes them on its drain', () => {
    const { owner, servers } = fanout(PASS_THROUGH_SPEC);
    servers[0].send(rowDescription(TypeOid.int4));
    servers[1].send(rowDescription(TypeOid.int4));
    owner.isFlowing = false;
    servers[0].send(dataRows([1, 2]));
    expect(servers[0].isPaused).toBe(true);
    expect(owner.drains).toHaveLength(1);
    servers[1].send(dataRows([3])); // rows it had in flight still go out; then it stops too
    expect(servers[1].isPaused).toBe(true);
    expect(owner.rows).toBe(3);
    expect(owner.drains).toHaveLength(1); // one drain wait, however many shards
    owner.drain();
    expect(servers.map((s) => s.isPaused)).toEqual([false, false]);
    servers[0].send(dataRows([4]));
    expect(servers[0].isPaused).toBe(false);
  });

  it('stops a shard whose merge queue is full while the merge waits for another; resumes it at half', () => {
    const { owner, servers } = fanout({ ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] });
    servers[0].send(rowDescription(TypeOid.int4));
    servers[1].send(rowDescription(TypeOid.int4));
    servers[0].send(dataRows(range(2, MERGE_QUEUE_MAX_ROWS, 2)));
    expect(servers[0].isPaused).toBe(false);
    servers[0].send(dataRows([2 * MERGE_QUEUE_MAX_ROWS + 2]));
    expect(servers[0].isPaused).toBe(true);
    expect(owner.rows).toBe(0);
    // Shard 1 (the one the merge waits for) keeps being read; its rows let shard 0's queue down below half.
    servers[1].send(dataRows([MERGE_QUEUE_MAX_ROWS + 1]));
    expect(servers[1].isPaused).toBe(false);
    expect(servers[0].isPaused).toBe(true); // 5,001 rows still queued: above half
    servers[1].send(dataRows([MERGE_QUEUE_MAX_ROWS + 3]));
    expect(servers[0].isPaused).toBe(false);
    servers[1].send(selectTag(2));
    servers[0].send(selectTag(MERGE_QUEUE_MAX_ROWS + 1));
    servers[0].ready();
    servers[1].ready();
    expect(owner.rows).toBe(MERGE_QUEUE_MAX_ROWS + 3);
    expect(owner.doneStatus).toBe(TxStatus.Idle);
  });

  it('a queue held back by a client drain: resumed only once both allow it', () => {
    const { owner, servers } = fanout({ ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] });
    servers[0].send(rowDescription(TypeOid.int4));
    servers[1].send(rowDescription(TypeOid.int4));
    servers[0].send(dataRows(range(2, MERGE_QUEUE_MAX_ROWS + 1, 2)));
    expect(servers[0].isPaused).toBe(true);
    owner.drain(); // nothing was blocked: no effect on the queue's pause
    expect(servers[0].isPaused).toBe(true);
    owner.isFlowing = false;
    servers[1].send(dataRows([3 * MERGE_QUEUE_MAX_ROWS])); // most of shard 0's queue goes out; the client fills
    expect(servers[1].isPaused).toBe(true);
    expect(servers[0].isPaused).toBe(true);
    owner.drain();
    expect(servers.map((s) => s.isPaused)).toEqual([false, false]);
  });

  it('shards run one after another (a write): never paused for the merge queue', () => {
    const { servers, f } = fanout({ ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] });
    f.onServerDone = () => undefined;
    servers[0].send(rowDescription(TypeOid.int4));
    servers[0].send(dataRows(range(1, MERGE_QUEUE_MAX_ROWS + 10)));
    expect(servers[0].isPaused).toBe(false);
  });

  it('a shard paused when its last ReadyForQuery arrives is resumed: it never goes back paused', () => {
    const { owner, servers } = fanout(PASS_THROUGH_SPEC);
    servers[0].send(rowDescription(TypeOid.int4));
    owner.isFlowing = false;
    servers[0].send(Buffer.concat([dataRows([1]), selectTag(1)]));
    expect(servers[0].isPaused).toBe(true);
    servers[0].ready();
    expect(servers[0].isPaused).toBe(false);
  });

  it('abort drops the merge queues: a shard paused for its queue reads again', () => {
    const { servers, f } = fanout({ ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] });
    servers[0].send(rowDescription(TypeOid.int4));
    servers[0].send(dataRows(range(1, MERGE_QUEUE_MAX_ROWS + 1)));
    expect(servers[0].isPaused).toBe(true);
    f.abort(PgError.internal('stop'));
    expect(servers[0].isPaused).toBe(false);
  });
});

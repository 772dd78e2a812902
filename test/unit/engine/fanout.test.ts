// Fan-out backpressure without sockets: the sinks a Fanout hands its servers stop them (writeToClient false, resume
// kept) while the client is backpressured or while a shard's ORDER BY merge queue is full, resume them when the client
// drains or the queue is down to half, never pause a shard for its queue when shards run one after another, and never
// leave a shard paused after its last ReadyForQuery. The Describe of the portal the proxy adds when the client
// described no portal (only statements, whose RowDescription says text for every column): which reply is its, kept
// from the client, whose types and formats the merge uses.
import { describe, expect, it } from 'vitest';
import type { ReplySink, ServerConnection } from '../../../src/backend/server-connection.js';
import { MERGE_QUEUE_MAX_ROWS, type RankRequest } from '../../../src/execute/reply-merger.js';
import { PASS_THROUGH_SPEC, sortKey, type MergeSpec } from '../../../src/execute/merge-spec.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import { Fanout, withPortalDescribe, type FanoutOwner } from '../../../src/engine/fanout.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { Backend, Frontend, TxStatus } from '../../../src/protocol/codes.js';
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
  /** The database's order, as a shard gives it (here: ICU en via Intl.Collator); every request is kept. */
  rankRequests: RankRequest[] = [];
  rankTexts(request: RankRequest, done: (ranks: Map<string, number> | PgError) => void): void {
    this.rankRequests.push(request);
    const sorted = [...request.values].sort(new Intl.Collator('en').compare);
    done(new Map(sorted.map((v, i) => [v, i])));
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
  constructor(readonly sink: ReplySink) {}
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

// --- the Describe of the portal the proxy adds -------------------------------------------------------------------

/** A frontend message. */
function message(type: number, body: string | Buffer = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type;
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const PARSE = message(Frontend.Parse, 'select id from users order by id\0\0\0\0');
const BIND = message(Frontend.Bind, '\0\0\0\0\0\0\0\x01\0\x01'); // unnamed portal, binary results
const EXECUTE = message(Frontend.Execute, '\0\0\0\0\0');
const SYNC = message(Frontend.Sync);
const describeMsg = (kind: 'S' | 'P', name = ''): Buffer => message(Frontend.Describe, `${kind}${name}\0`);

/** The request's message types as characters, e.g. 'PDBES'. */
const typesOf = (frames: Buffer[]): string => frames.map((f) => String.fromCharCode(f[0])).join('');

function request(...frames: Buffer[]): { types: number[]; frames: Buffer[] } {
  return { types: frames.map((f) => f[0]), frames };
}

describe('withPortalDescribe', () => {
  it('adds a Describe of the executed portal before the Execute when the client described only the statement', () => {
    for (const frames of [
      [PARSE, describeMsg('S'), BIND, EXECUTE, SYNC],
      [PARSE, BIND, describeMsg('S'), EXECUTE, SYNC],
      [PARSE, BIND, EXECUTE, SYNC],
    ]) {
      const { types } = request(...frames);
      const sent = withPortalDescribe(types, frames);
      expect(sent).not.toBeNull();
      const exec = frames.indexOf(EXECUTE);
      expect(typesOf(sent?.frames ?? [])).toBe(`${typesOf(frames.slice(0, exec))}DES`);
      expect(sent?.frames[exec]).toEqual(describeMsg('P'));
      expect(sent?.types).toEqual((sent?.frames ?? []).map((f) => f[0]));
    }
  });

  it('describes a named portal by its name', () => {
    const exec = message(Frontend.Execute, 'c1\0\0\0\0\0');
    const frames = [describeMsg('S', 's1'), exec, SYNC];
    const sent = withPortalDescribe(
      frames.map((f) => f[0]),
      frames,
    );
    expect(sent?.frames[1]).toEqual(describeMsg('P', 'c1'));
  });

  it('adds nothing when the client described a portal, or there is no Execute', () => {
    for (const frames of [
      [PARSE, describeMsg('S'), BIND, describeMsg('P'), EXECUTE, SYNC],
      [PARSE, BIND, describeMsg('P'), EXECUTE, SYNC],
      [PARSE, describeMsg('S'), SYNC],
      [message(Frontend.Query, 'select 1\0')],
    ]) {
      expect(withPortalDescribe(request(...frames).types, frames)).toBeNull();
    }
  });
});

/** A RowDescription of int8 columns named a, b, … with the format code `format` each. */
function int8Description(columns: number, format: number): Buffer {
  const w = new MessageWriter(64).int16(columns);
  for (let i = 0; i < columns; i++) {
    w.cstring(String.fromCharCode(0x61 + i))
      .int32(0)
      .int16(0)
      .int32(TypeOid.int8)
      .int16(8)
      .int32(-1)
      .int16(format);
  }
  return w.frame(Backend.RowDescription);
}

/** DataRows of one binary int8 column. */
function binaryInt8Rows(values: number[]): Buffer {
  return Buffer.concat(
    values.map((v) => {
      const value = Buffer.alloc(8);
      value.writeBigInt64BE(BigInt(v));
      return new MessageWriter(16).int16(1).int32(8).bytes(value).frame(Backend.DataRow);
    }),
  );
}

const bodyless = (type: number): Buffer => new MessageWriter(8).frame(type);
const PARSE_COMPLETE = bodyless(Backend.ParseComplete);
const BIND_COMPLETE = bodyless(Backend.BindComplete);
const NO_DATA = bodyless(Backend.NoData);
const NO_PARAMETERS = new MessageWriter(8).int16(0).frame(Backend.ParameterDescription);
const NOTICE = new MessageWriter(16).cstring('SNOTICE').cstring('Mhi').int8(0).frame(Backend.NoticeResponse);
const ERROR = new MessageWriter(32)
  .cstring('SERROR')
  .cstring('C22P02')
  .cstring('Mbad input')
  .int8(0)
  .frame(Backend.ErrorResponse);

/** A client keeping every frame it gets. */
class FrameOwner extends Owner {
  frames: Buffer[] = [];
  override writeToClient(buf: Buffer): boolean {
    for (let p = 0; p < buf.length; p += 1 + buf.readInt32BE(p + 1))
      this.frames.push(buf.subarray(p, p + 1 + buf.readInt32BE(p + 1)));
    return super.writeToClient(buf);
  }
  get kinds(): string {
    return this.frames.map((f) => String.fromCharCode(f[0])).join('');
  }
  get ints(): number[] {
    return this.frames.filter((f) => f[0] === Backend.DataRow).map((f) => Number(f.readBigInt64BE(11)));
  }
}

/**
 * A 2-shard fan-out (with an added Describe of the portal unless told), each shard answering `replies(its rows)`:
 * interleaved frame by frame unless told, else shard 0's whole reply first.
 */
function describedFanout(
  spec: MergeSpec,
  replies: (rows: Buffer) => Buffer[],
  rows: number[][],
  { hasInjectedDescribe = true, isInterleaved = true } = {},
): FrameOwner {
  const owner = new FrameOwner();
  const f = new Fanout(2, spec, owner, hasInjectedDescribe);
  const servers = [0, 1].map((i) => new FakeServer(f.sinkFor(i)));
  const perShard = rows.map((r) => replies(binaryInt8Rows(r)));
  if (isInterleaved) {
    for (let i = 0; i < Math.max(...perShard.map((r) => r.length)); i++) {
      servers.forEach((s, shard) => {
        const frame = perShard[shard][i];
        if (frame !== undefined) s.send(frame);
      });
    }
  } else {
    servers.forEach((s, shard) => perShard[shard].forEach((frame) => s.send(frame)));
  }
  for (const s of servers) s.ready();
  expect(owner.doneStatus).toBe(TxStatus.Idle);
  return owner;
}

describe('Fanout: the reply to the Describe of the portal the proxy added', () => {
  const SORTED = { ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] };
  const ROWS = [
    [-300, -2, 5, 1000],
    [-7, 0, 1, 700],
  ];
  const MERGED = [-300, -7, -2, 0, 1, 5, 700, 1000];
  const tag = (rows: Buffer): Buffer => selectTag(rows.length / 19);

  it("Describe S before Bind: the client gets the statement's description; rows merged as binary", () => {
    const owner = describedFanout(
      SORTED,
      (rows) => [
        PARSE_COMPLETE,
        NO_PARAMETERS,
        int8Description(1, 0),
        BIND_COMPLETE,
        int8Description(1, 1),
        rows,
        tag(rows),
      ],
      ROWS,
    );
    expect(owner.kinds).toBe(`1tT2${'D'.repeat(8)}C`);
    expect(owner.frames[2]).toEqual(int8Description(1, 0));
    expect(owner.ints).toEqual(MERGED);
  });

  it('Describe S after Bind, with a notice in between: the same', () => {
    const owner = describedFanout(
      SORTED,
      (rows) => [
        PARSE_COMPLETE,
        BIND_COMPLETE,
        NO_PARAMETERS,
        NOTICE,
        int8Description(1, 0),
        NOTICE,
        int8Description(1, 1),
        rows,
        tag(rows),
      ],
      ROWS,
    );
    expect(owner.kinds).toBe(`12tNNTNN${'D'.repeat(8)}C`);
    expect(owner.frames[5]).toEqual(int8Description(1, 0));
    expect(owner.ints).toEqual(MERGED);
  });

  it('no Describe of the client: nothing but the rows', () => {
    const owner = describedFanout(
      SORTED,
      (rows) => [PARSE_COMPLETE, BIND_COMPLETE, int8Description(1, 1), rows, tag(rows)],
      ROWS,
    );
    expect(owner.kinds).toBe(`12${'D'.repeat(8)}C`);
    expect(owner.ints).toEqual(MERGED);
  });

  it("a statement with no rows described (NoData): the client's NoData, not the portal's", () => {
    const owner = describedFanout(
      SORTED,
      () => [PARSE_COMPLETE, NO_PARAMETERS, NO_DATA, BIND_COMPLETE, NO_DATA, selectTag(0)],
      ROWS,
    );
    expect(owner.kinds).toBe('1tn2C');
  });

  it("Bind fails: the client still gets its statement's description, then the error", () => {
    const owner = describedFanout(
      SORTED,
      () => [PARSE_COMPLETE, NO_PARAMETERS, int8Description(1, 0), ERROR],
      ROWS,
    );
    expect(owner.kinds).toBe('1tTE');
  });

  it('Execute fails: no description the client did not ask for', () => {
    const owner = describedFanout(
      SORTED,
      () => [
        PARSE_COMPLETE,
        NO_PARAMETERS,
        int8Description(1, 0),
        BIND_COMPLETE,
        int8Description(1, 1),
        ERROR,
      ],
      ROWS,
    );
    expect(owner.kinds).toBe('1tT2E');
  });
});

describe('Fanout: the client described both the statement and the portal (nothing added)', () => {
  it("merges with the portal's formats; each description is checked against its own kind", () => {
    const owner = describedFanout(
      { ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)] },
      (rows) => [
        PARSE_COMPLETE,
        NO_PARAMETERS,
        int8Description(1, 0),
        BIND_COMPLETE,
        int8Description(1, 1),
        rows,
        selectTag(rows.length / 19),
      ],
      [
        [-300, -2, 5, 1000],
        [-7, 0, 1, 700],
      ],
      { hasInjectedDescribe: false, isInterleaved: false },
    );
    expect(owner.kinds).toBe(`1tT2T${'D'.repeat(8)}C`);
    expect([owner.frames[2], owner.frames[4]]).toEqual([int8Description(1, 0), int8Description(1, 1)]);
    expect(owner.ints).toEqual([-300, -7, -2, 0, 1, 5, 700, 1000]);
  });
});

describe('Fanout: ORDER BY on text in a collation that is not byte order', () => {
  const textRow = (v: string): Buffer =>
    new MessageWriter(32).int16(1).int32(Buffer.byteLength(v)).bytes(Buffer.from(v)).frame(Backend.DataRow);
  const textDescription = new MessageWriter(32)
    .int16(1)
    .cstring('w')
    .int32(16385)
    .int16(2)
    .int32(TypeOid.text)
    .int16(-1)
    .int32(-1)
    .int16(0)
    .frame(Backend.RowDescription);

  it('holds the rows until a shard ranks the values, then merges in that order (and LIMIT applies after)', () => {
    const spec: MergeSpec = {
      ...PASS_THROUGH_SPEC,
      orderBy: [sortKey(0, false)],
      aggregates: null,
      limit: 5,
      textCollation: 'en-US-x-icu',
    };
    const owner = new FrameOwner();
    const f = new Fanout(2, spec, owner);
    const servers = [0, 1].map((i) => new FakeServer(f.sinkFor(i)));
    // Each shard's rows in the en order (a < B < c …), as that shard sorted them.
    const shards = [
      ['a', 'c', 'e'],
      ['B', 'D', 'F'],
    ];
    shards.forEach((words, i) => {
      servers[i].send(Buffer.concat([textDescription, ...words.map(textRow), selectTag(3)]));
    });
    expect(owner.frames.filter((fr) => fr[0] === Backend.DataRow)).toHaveLength(0); // nothing before the ranks
    servers[0].ready();
    servers[1].ready();
    const words = owner.frames.filter((fr) => fr[0] === Backend.DataRow).map((fr) => fr.toString('utf8', 11));
    expect(words).toEqual(['a', 'B', 'c', 'D', 'e']); // not byte order (B D F a c e)
    expect(owner.kinds).toBe('TDDDDDC');
    expect(owner.rankRequests).toEqual([
      { values: ['a', 'c', 'e', 'B', 'D', 'F'], collation: null, columns: [{ tableOid: 16385, column: 2 }] },
    ]);
    expect(owner.doneStatus).not.toBeNull();
  });
});

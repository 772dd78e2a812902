// Unit tests for ResponseScanner: byte-exact forwarding at any chunking, ReadyForQuery/ParameterStatus callbacks,
// and swallowing exactly the replies to messages the proxy injected.
import { describe, expect, it } from 'vitest';
import { ResponseScanner, type ScannerOwner } from '../../../src/backend/response-scanner.js';
import { ErrorClassCounts } from '../../../src/stats/error-classes.js';

function msg(type: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const Z = (status: 'I' | 'T' | 'E'): Buffer => msg('Z', status);
const S = (name: string, value: string): Buffer => msg('S', `${name}\0${value}\0`);
const C = (tag: string): Buffer => msg('C', `${tag}\0`);
const E = (code: string, text: string): Buffer => msg('E', `SERROR\0C${code}\0M${text}\0\0`);
const ROW_DESC = msg('T', Buffer.concat([Buffer.from([0, 1]), Buffer.from('x\0'), Buffer.alloc(18)]));
const ROW = (v: string): Buffer =>
  msg('D', Buffer.concat([Buffer.from([0, 1, 0, 0, 0, v.length]), Buffer.from(v)]));
const PARSE_COMPLETE = msg('1');
const BIND_COMPLETE = msg('2');
const CLOSE_COMPLETE = msg('3');

class FakeOwner implements ScannerOwner {
  readonly chunks: Buffer[] = [];
  readonly ready: string[] = [];
  readonly params: [string, string][] = [];
  errors = 0;
  readonly swallowedErrors: Buffer[] = [];
  readonly protocolErrors: string[] = [];

  forward(buf: Buffer): void {
    this.chunks.push(Buffer.from(buf));
  }
  readyForQuery(status: number): void {
    this.ready.push(String.fromCharCode(status));
  }
  parameterStatus(name: string, value: string): void {
    this.params.push([name, value]);
  }
  /** SQLSTATE classes of the errors reported, read from the frame as the server connection does. */
  readonly errorClasses = new ErrorClassCounts();
  errorSeen(buf: Buffer, start: number): void {
    this.errors++;
    this.errorClasses.recordFrame(buf, start);
  }
  swallowedError(frame: Buffer): void {
    this.swallowedErrors.push(Buffer.from(frame));
  }
  readonly fatals: Buffer[] = [];
  fatalSeen(frame: Buffer): void {
    this.fatals.push(Buffer.from(frame));
  }
  protocolError(reason: string): void {
    this.protocolErrors.push(reason);
  }
  get forwarded(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function scanAll(scanner: ResponseScanner, input: Buffer, cuts: number[]): void {
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    // A fresh copy per chunk: the scanner must not rely on chunk memory staying put.
    scanner.scan(Buffer.from(input.subarray(from, cut)));
    from = cut;
  }
}

/** Every way to cut `input` in two, plus byte by byte. */
function chunkings(input: Buffer): number[][] {
  const out: number[][] = [[]];
  for (let i = 1; i < input.length; i++) out.push([i]);
  out.push(Array.from({ length: input.length - 1 }, (_, i) => i + 1));
  return out;
}

function hex(b: Buffer): string {
  return b.toString('hex');
}

// A simple query with a ParameterStatus in the middle, then an extended-protocol batch, then a failed query.
const STREAM = Buffer.concat([
  ROW_DESC,
  ROW('1'),
  ROW('hello world'),
  C('SELECT 2'),
  S('application_name', 'psql'),
  Z('I'),
  PARSE_COMPLETE,
  BIND_COMPLETE,
  msg('D', Buffer.concat([Buffer.from([0, 1, 0, 0, 1, 0]), Buffer.alloc(256, 0x61)])),
  C('SELECT 1'),
  Z('T'),
  E('42601', 'syntax error'),
  Z('E'),
]);

describe('ResponseScanner without swallow rules', () => {
  it('forwards exactly the input bytes for any chunking', () => {
    for (const cuts of chunkings(STREAM)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.readyExpected = 3;
      scanAll(scanner, STREAM, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(STREAM));
      expect(owner.ready).toEqual(['I', 'T', 'E']);
      expect(owner.params).toEqual([['application_name', 'psql']]);
      expect(owner.errors).toBe(1);
      expect(owner.protocolErrors).toEqual([]);
      expect(scanner.readySeen).toBe(3);
      expect(scanner.isAtMessageBoundary).toBe(true);
    }
  });

  it('reports ReadyForQuery only after its bytes were forwarded', () => {
    const owner = new FakeOwner();
    const order: string[] = [];
    owner.forward = (buf) => order.push(`fwd:${hex(buf)}`);
    owner.readyForQuery = (s) => order.push(`ready:${String.fromCharCode(s)}`);
    const scanner = new ResponseScanner(owner);
    const input = Buffer.concat([C('SELECT 1'), Z('I')]);
    scanner.scan(input);
    expect(order.join('|').endsWith(`${hex(Z('I'))}|ready:I`)).toBe(true);
  });

  it('is not at a message boundary in the middle of a frame', () => {
    const scanner = new ResponseScanner(new FakeOwner());
    scanner.scan(ROW('abcdef').subarray(0, 7));
    expect(scanner.isAtMessageBoundary).toBe(false);
    scanner.scan(ROW('abcdef').subarray(7));
    expect(scanner.isAtMessageBoundary).toBe(true);
  });

  it('reports a length below 4 as a protocol error', () => {
    const owner = new FakeOwner();
    new ResponseScanner(owner).scan(Buffer.from([0x44, 0, 0, 0, 2]));
    expect(owner.protocolErrors).toHaveLength(1);
  });
});

describe('ResponseScanner and FATAL errors', () => {
  // As PostgreSQL 15 sends it for pg_terminate_backend: S, V, C, M, F, L, R.
  const FATAL = msg(
    'E',
    'SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0Fpostgres.c\0L3211\0' +
      'RProcessInterrupts\0\0',
  );
  const running = Buffer.concat([ROW_DESC, ROW('1'), FATAL]);

  it('withholds the FATAL from the stream and hands it over whole, for any chunking', () => {
    for (const cuts of chunkings(running)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.readyExpected = 1;
      scanAll(scanner, running, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(Buffer.concat([ROW_DESC, ROW('1')])));
      expect(owner.fatals.map(hex)).toEqual([hex(FATAL)]);
      expect(owner.errors).toBe(1);
    }
  });

  it('also inside swallowed replies (the proxy`s own SET), and with swallow rules pending', () => {
    for (const cuts of chunkings(FATAL)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNextUntilReady();
      scanner.readyExpected = 1;
      scanAll(scanner, FATAL, cuts);
      expect(owner.forwarded.length).toBe(0);
      expect(owner.fatals.map(hex)).toEqual([hex(FATAL)]);
    }
  });

  it('forwards ERROR and PANIC-free errors as before, deciding by the non-localized severity', () => {
    const localized = msg('E', 'SSCHWERWIEGEND\0VFATAL\0C57P01\0Mx\0\0');
    const error = msg('E', 'SFEHLER\0VERROR\0C42601\0Mx\0\0');
    const oldServer = msg('E', 'SFATAL\0C57P01\0Mx\0\0');
    const input = Buffer.concat([error, Z('I'), localized]);
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.readyExpected = 1;
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded)).toBe(hex(Buffer.concat([error, Z('I')])));
      expect(owner.fatals.map(hex)).toEqual([hex(localized)]);
    }
    const owner = new FakeOwner();
    new ResponseScanner(owner).scan(oldServer);
    expect(owner.fatals.map(hex)).toEqual([hex(oldServer)]);
  });

  it('forwards a long non-fatal error split across chunks without holding it', () => {
    const long = msg('E', `SERROR\0VERROR\0C22P02\0M${'x'.repeat(5000)}\0\0`);
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.scan(long.subarray(0, 3000));
    expect(owner.forwarded.length).toBe(3000);
    scanner.scan(long.subarray(3000));
    expect(hex(owner.forwarded)).toBe(hex(long));
    expect(owner.fatals).toEqual([]);
  });
});

describe('ResponseScanner.swallowNextUntilReady', () => {
  // The proxy sends its own `SET ...` Query before the client's request; its replies (incl. Z) are dropped.
  const injected = Buffer.concat([C('SET'), S('application_name', 'app'), C('SET'), Z('I')]);
  const clientReplies = Buffer.concat([ROW_DESC, ROW('42'), C('SELECT 1'), Z('I')]);
  const input = Buffer.concat([injected, clientReplies]);

  it('drops exactly the injected query replies, for any chunking', () => {
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNextUntilReady();
      scanner.readyExpected += 1; // the injected Query
      scanner.readyExpected += 1; // the client's Query
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(clientReplies));
      expect(owner.ready).toEqual(['I']);
      // Server parameters are still tracked from swallowed replies.
      expect(owner.params).toEqual([['application_name', 'app']]);
      expect(scanner.hasRules).toBe(false);
      expect(scanner.readySeen).toBe(2);
    }
  });

  it('swallows an error inside the injected replies and reports it on the side', () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.swallowNextUntilReady();
    scanner.readyExpected += 2;
    const failing = Buffer.concat([E('22023', 'invalid value'), Z('I')]);
    scanner.scan(Buffer.concat([failing, clientReplies]));
    expect(hex(owner.forwarded)).toBe(hex(clientReplies));
    expect(owner.swallowedErrors.map(hex)).toEqual([hex(E('22023', 'invalid value'))]);
  });

  it('reports every error once with its SQLSTATE class, swallowed or not, for any chunking', () => {
    const failing = Buffer.concat([E('22023', 'invalid value'), Z('I')]);
    const clientError = Buffer.concat([E('42P01', 'relation does not exist'), Z('I')]);
    const stream = Buffer.concat([failing, clientError]);
    for (const cuts of chunkings(stream)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNextUntilReady();
      scanner.readyExpected += 2;
      scanAll(scanner, stream, cuts);
      expect(owner.errors, `cuts ${cuts.join(',')}`).toBe(2);
      // An error cut inside its C field is counted as class "??" (it is forwarded at once); one cut before is held
      // back until its severity is known (a FATAL one is withheld), and counted whole.
      const codeEnd = failing.length + E('42P01', 'x').indexOf('42P01') + 2;
      const codeField = failing.length + E('42P01', 'x').indexOf('C42P01');
      const isCodeCut = cuts.some((c) => c > codeField && c < codeEnd);
      expect(owner.errorClasses.entries(), `cuts ${cuts.join(',')}`).toEqual([
        ['22', 1],
        [isCodeCut ? '??' : '42', 1],
      ]);
    }
  });

  it('applies only after the ReadyForQuery replies already owed (pipelined batch first)', () => {
    const earlier = Buffer.concat([C('INSERT 0 1'), Z('I')]);
    const all = Buffer.concat([earlier, injected, clientReplies]);
    for (const cuts of chunkings(all)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.readyExpected += 1; // earlier batch still in flight
      scanner.swallowNextUntilReady();
      scanner.readyExpected += 2;
      scanAll(scanner, all, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(
        hex(Buffer.concat([earlier, clientReplies])),
      );
      expect(owner.ready).toEqual(['I', 'I']);
    }
  });
});

describe('ResponseScanner.swallowNext', () => {
  it('drops only the matching ParseComplete (and CloseComplete) of an injected Close+Parse', () => {
    // Client batch: Bind(s), Execute, Sync — the proxy put Close(s)+Parse(s) in front of the Bind.
    const input = Buffer.concat([
      CLOSE_COMPLETE,
      PARSE_COMPLETE,
      BIND_COMPLETE,
      ROW('7'),
      C('SELECT 1'),
      Z('I'),
    ]);
    const expected = Buffer.concat([BIND_COMPLETE, ROW('7'), C('SELECT 1'), Z('I')]);
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNext(0x33);
      scanner.swallowNext(0x31);
      scanner.readyExpected += 1;
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(expected));
      expect(owner.ready).toEqual(['I']);
      expect(scanner.hasRules).toBe(false);
    }
  });

  it('leaves the client one ParseComplete per Parse it sent when both share a batch', () => {
    // Client: Parse(unnamed), Bind(named s) → proxy injects Close+Parse for s: replies 1, 3, 1, 2, C, Z.
    const input = Buffer.concat([
      PARSE_COMPLETE,
      CLOSE_COMPLETE,
      PARSE_COMPLETE,
      BIND_COMPLETE,
      C('SELECT 1'),
      Z('I'),
    ]);
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.swallowNext(0x33);
    scanner.swallowNext(0x31);
    scanner.readyExpected += 1;
    scanner.scan(input);
    expect(hex(owner.forwarded)).toBe(
      hex(Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE, C('SELECT 1'), Z('I')])),
    );
  });

  it('counts repeated rules of one type', () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.swallowNext(0x31);
    scanner.swallowNext(0x31);
    scanner.readyExpected += 1;
    scanner.scan(Buffer.concat([PARSE_COMPLETE, PARSE_COMPLETE, PARSE_COMPLETE, Z('I')]));
    expect(hex(owner.forwarded)).toBe(hex(Buffer.concat([PARSE_COMPLETE, Z('I')])));
  });

  it('prunes rules an error skipped past, so the next batch is forwarded whole', () => {
    // Batch 1: injected Close+Parse; the Parse fails, so no ParseComplete comes before the server skips to Sync.
    const batch1 = Buffer.concat([CLOSE_COMPLETE, E('42601', 'syntax error'), Z('I')]);
    const batch2 = Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE, C('SELECT 1'), Z('I')]);
    const input = Buffer.concat([batch1, batch2]);
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNext(0x33);
      scanner.swallowNext(0x31);
      scanner.readyExpected += 1;
      scanAll(scanner, batch1, []);
      expect(scanner.hasRules).toBe(false);
      scanner.readyExpected += 1;
      const before = owner.forwarded.length;
      scanAll(
        scanner,
        batch2,
        cuts.filter((c) => c < batch2.length),
      );
      expect(hex(owner.forwarded.subarray(0, before))).toBe(
        hex(Buffer.concat([E('42601', 'syntax error'), Z('I')])),
      );
      expect(hex(owner.forwarded.subarray(before))).toBe(hex(batch2));
      expect(owner.ready).toEqual(['I', 'I']);
      expect(owner.errors).toBe(1);
    }
    // And all in one stream, pruning mid-chunk.
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowNext(0x33);
      scanner.swallowNext(0x31);
      scanner.readyExpected += 2;
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(input.subarray(CLOSE_COMPLETE.length)));
    }
  });

  it('reset() forgets rules and partial frames', () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.swallowNext(0x31);
    scanner.scan(ROW('abc').subarray(0, 3));
    scanner.reset();
    expect(scanner.hasRules).toBe(false);
    expect(scanner.isAtMessageBoundary).toBe(true);
    scanner.scan(PARSE_COMPLETE);
    expect(hex(owner.forwarded)).toBe(hex(PARSE_COMPLETE));
  });
});

describe('ResponseScanner chunking invariance (seeded random streams)', () => {
  /** Small deterministic PRNG (mulberry32). */
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  type Outcome = { forwarded: string; ready: string; params: string; swallowed: number };

  function run(frames: Buffer[], setup: (s: ResponseScanner) => void, cuts: number[]): Outcome {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    setup(scanner);
    scanAll(scanner, Buffer.concat(frames), cuts);
    return {
      forwarded: hex(owner.forwarded),
      ready: owner.ready.join(''),
      params: owner.params.map((p) => p.join('=')).join(','),
      swallowed: owner.swallowedErrors.length,
    };
  }

  it('gives the same result for random chunkings as for one chunk per frame', () => {
    const random = rng(20240601);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
    for (let round = 0; round < 300; round++) {
      // Batches: each ends with a ReadyForQuery; some are the proxy's own (swallowed until ready), some carry an
      // injected Close+Parse (CloseComplete/ParseComplete swallowed).
      const frames: Buffer[] = [];
      const plan: ('until' | 'close-parse' | 'none')[] = [];
      const batches = 1 + Math.floor(random() * 4);
      for (let b = 0; b < batches; b++) {
        const kind = pick(['until', 'close-parse', 'none', 'none'] as const);
        plan.push(kind);
        if (kind === 'close-parse') frames.push(CLOSE_COMPLETE, PARSE_COMPLETE);
        const n = Math.floor(random() * 5);
        for (let i = 0; i < n; i++) {
          frames.push(
            pick([
              ROW('x'.repeat(Math.floor(random() * 40))),
              S('TimeZone', 'UTC'),
              BIND_COMPLETE,
              C('SELECT 1'),
              E('42000', 'boom'),
              msg('N', 'SNOTICE\0Mhi\0\0'),
            ]),
          );
        }
        frames.push(Z(pick(['I', 'T', 'E'] as const)));
      }
      const setup = (s: ResponseScanner): void => {
        for (const kind of plan) {
          if (kind === 'until') s.swallowNextUntilReady();
          if (kind === 'close-parse') {
            s.swallowNext(0x33);
            s.swallowNext(0x31);
          }
          s.readyExpected += 1;
        }
      };
      const perFrame: number[] = [];
      let at = 0;
      for (const f of frames.slice(0, -1)) perFrame.push((at += f.length));
      const reference = run(frames, setup, perFrame);
      const total = at + frames[frames.length - 1].length;
      for (let k = 0; k < 5; k++) {
        const cuts = [
          ...new Set(
            Array.from(
              { length: 1 + Math.floor(random() * 8) },
              () => 1 + Math.floor(random() * (total - 1)),
            ),
          ),
        ].sort((x, y) => x - y);
        expect(run(frames, setup, cuts), `round ${round} cuts ${cuts.join(',')}`).toEqual(reference);
      }
      // Batches swallowed whole never report their ReadyForQuery.
      expect(reference.ready.length).toBe(plan.filter((k) => k !== 'until').length);
    }
  });
});

describe('replaceErrorInFlight (the deadlock check rewriting its own cancel)', () => {
  const MARKER = Buffer.from('C57014\0', 'latin1');
  const DEADLOCK = E('40P01', 'deadlock detected');

  it("replaces the request in flight's 57014, and only that request's", () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.readyExpected = 1; // a request in flight
    scanner.replaceErrorInFlight(MARKER, DEADLOCK);
    const canceled = E('57014', 'canceling statement due to user request');
    scanner.readyExpected = 2; // the next request, pipelined
    scanner.scan(Buffer.concat([canceled, Z('E'), canceled, Z('E')]));
    expect(owner.forwarded).toEqual(Buffer.concat([DEADLOCK, Z('E'), canceled, Z('E')]));
  });

  it('lapses when the request in flight ends without the cancel taking effect', () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.readyExpected = 1;
    scanner.replaceErrorInFlight(MARKER, DEADLOCK);
    scanner.scan(Buffer.concat([C('UPDATE 1'), Z('T')]));
    scanner.readyExpected = 2;
    const canceled = E('57014', 'canceling statement due to user request');
    scanner.scan(Buffer.concat([canceled, Z('E')]));
    expect(owner.forwarded).toEqual(Buffer.concat([C('UPDATE 1'), Z('T'), canceled, Z('E')]));
  });
});

describe('trimNextParameterDescription (statements given pgdog.unique_id() parameters)', () => {
  const T = (...oids: number[]): Buffer => {
    const body = Buffer.alloc(2 + 4 * oids.length);
    body.writeInt16BE(oids.length, 0);
    oids.forEach((oid, k) => body.writeInt32BE(oid, 2 + 4 * k));
    return msg('t', body);
  };
  const NO_DATA = msg('n');

  it('trims the described statements in order, leaves the null ones, at any chunking', () => {
    // Window 1: a statement with one id parameter (text, int8 → text), one without, another with two (→ none).
    const input = Buffer.concat([
      PARSE_COMPLETE,
      T(25, 20),
      ROW_DESC,
      T(23, 25),
      NO_DATA,
      T(20, 20),
      NO_DATA,
      Z('I'),
      T(25, 20), // window 2: no rule
      NO_DATA,
      Z('I'),
    ]);
    const want = Buffer.concat([
      PARSE_COMPLETE,
      T(25),
      ROW_DESC,
      T(23, 25),
      NO_DATA,
      T(),
      NO_DATA,
      Z('I'),
      T(25, 20),
      NO_DATA,
      Z('I'),
    ]);
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.trimNextParameterDescription(1);
      scanner.trimNextParameterDescription(null);
      scanner.trimNextParameterDescription(0);
      scanner.readyExpected = 2;
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(want));
      expect(owner.ready).toEqual(['I', 'I']);
      expect(scanner.isAtMessageBoundary).toBe(true);
    }
  });

  it('drops the rules of a window an error ended before its Describe was answered', () => {
    const owner = new FakeOwner();
    const scanner = new ResponseScanner(owner);
    scanner.trimNextParameterDescription(1);
    scanner.readyExpected = 2;
    const failed = E('42P01', 'relation "nope" does not exist');
    scanner.scan(Buffer.concat([failed, Z('I'), T(25, 20), NO_DATA, Z('I')]));
    expect(owner.forwarded).toEqual(Buffer.concat([failed, Z('I'), T(25, 20), NO_DATA, Z('I')]));
  });
});

describe('ResponseScanner.swallowReply (by position)', () => {
  it("keeps a client's own ParseComplete in its place when an injected Parse comes later in the window", () => {
    // Client: Parse s1, Bind s1, Execute, Bind s2, Execute, Sync — the proxy injected Close+Parse of s2 in front of
    // the second Bind: replies 1 (s1, client's), 2, C, 3 (injected), 1 (injected), 2, C, Z.
    const input = Buffer.concat([
      PARSE_COMPLETE,
      BIND_COMPLETE,
      C('SELECT 1'),
      CLOSE_COMPLETE,
      PARSE_COMPLETE,
      BIND_COMPLETE,
      C('SELECT 2'),
      Z('I'),
    ]);
    const expected = Buffer.concat([
      PARSE_COMPLETE,
      BIND_COMPLETE,
      C('SELECT 1'),
      BIND_COMPLETE,
      C('SELECT 2'),
      Z('I'),
    ]);
    for (const cuts of chunkings(input)) {
      const owner = new FakeOwner();
      const scanner = new ResponseScanner(owner);
      scanner.swallowReply(0x33, 1, false); // the write's first Close
      scanner.swallowReply(0x31, 2, false); // its second Parse
      scanner.readyExpected += 1;
      scanAll(scanner, input, cuts);
      expect(hex(owner.forwarded), `cuts ${cuts.join(',')}`).toBe(hex(expected));
      expect(scanner.hasRules).toBe(false);
    }
  });

  it("a client's Close before an injected Close keeps its CloseComplete; positions carry over an open window", () => {
    const owner = new FakeOwner();
    const s = new ResponseScanner(owner);
    // Write 1: Close s1 (client's), Flush — the window stays open with one Close sent.
    s.noteWriteEnd(true, 0, 1, false);
    // Write 2: Close(injected) + Parse(injected) s2, Bind s2, Execute, Sync.
    s.swallowReply(0x33, 1, false);
    s.swallowReply(0x31, 1, false);
    s.readyExpected += 1;
    s.scan(Buffer.concat([CLOSE_COMPLETE])); // write 1's reply arrives first
    s.scan(Buffer.concat([CLOSE_COMPLETE, PARSE_COMPLETE, BIND_COMPLETE, C('SELECT 1'), Z('I')]));
    expect(hex(owner.forwarded)).toBe(
      hex(Buffer.concat([CLOSE_COMPLETE, BIND_COMPLETE, C('SELECT 1'), Z('I')])),
    );
    // A write that closed the window before its injected message counts from its Sync.
    s.noteWriteEnd(true, 3, 3, false); // (an open window again)
    s.swallowReply(0x31, 1, true);
    s.readyExpected += 1;
    s.scan(Buffer.concat([PARSE_COMPLETE, Z('I')]));
    expect(hex(owner.forwarded)).toBe(
      hex(Buffer.concat([CLOSE_COMPLETE, BIND_COMPLETE, C('SELECT 1'), Z('I'), Z('I')])),
    );
  });

  it('an error before the injected message leaves its rule to lapse at the ReadyForQuery', () => {
    const owner = new FakeOwner();
    const s = new ResponseScanner(owner);
    s.swallowReply(0x31, 2, false);
    s.readyExpected += 1;
    const input = Buffer.concat([PARSE_COMPLETE, E('42601', 'syntax'), Z('I')]);
    s.scan(input);
    expect(hex(owner.forwarded)).toBe(hex(input));
    expect(s.hasRules).toBe(false);
  });
});

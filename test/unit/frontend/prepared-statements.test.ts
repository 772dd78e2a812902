// Unit tests for named prepared statements under transaction pooling: name mapping, rewriting of
// Parse/Bind/Describe/Close, re-preparation on servers that lack a statement, and malformed frames.
import { describe, expect, it } from 'vitest';
import { Frontend } from '../../../src/protocol/codes.js';
import {
  ClientStatements,
  StatementNames,
  type StatementServer,
} from '../../../src/frontend/prepared-statements.js';
import { closeStatement, parseMessage } from '../../../src/protocol/messages.js';
import { ServerStatements } from '../../../src/backend/server-statements.js';

const P = 0x50;
const B = 0x42;
const D = 0x44;
const C = 0x43;
const NO_TYPES = Buffer.from([0, 0]);
const ONE_INT4 = Buffer.from([0, 1, 0, 0, 0, 23]);

class FakeServer implements StatementServer {
  readonly prepared = new ServerStatements();
  readonly unconfirmed: string[] = [];
  readonly swallowed: number[] = [];
  /** Where each swallowed reply's message sits: its position among its kind in the write, and whether a Sync came first. */
  readonly positions: string[] = [];
  swallowReply(type: number, inWrite: number, isNewWindow: boolean): void {
    this.swallowed.push(type);
    this.positions.push(`${String.fromCharCode(type)}${inWrite}${isNewWindow ? '+' : ''}`);
  }
}

function typed(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** Bind: portal, statement, one text parameter "42", no result formats. */
const BIND_TAIL = Buffer.from([0, 0, 0, 1, 0, 0, 0, 2, 0x34, 0x32, 0, 0]);
function bind(portal: string, stmt: string): Buffer {
  return typed('B', Buffer.concat([Buffer.from(`${portal}\0${stmt}\0`), BIND_TAIL]));
}
function describeMsg(kind: 'S' | 'P', name: string): Buffer {
  return typed('D', Buffer.from(`${kind}${name}\0`));
}
function close(kind: 'S' | 'P', name: string): Buffer {
  return typed('C', Buffer.from(`${kind}${name}\0`));
}

/** Decoded view of an output frame, for readable assertions. */
function decode(frame: Buffer): string {
  const type = String.fromCharCode(frame[0]);
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  const body = frame.subarray(5);
  const parts = (from: number, n: number): string[] => {
    const out: string[] = [];
    let i = from;
    for (let k = 0; k < n; k++) {
      const end = body.indexOf(0, i);
      out.push(body.toString('utf8', i, end));
      i = end + 1;
    }
    return out;
  };
  switch (type) {
    case 'P': {
      const [name, text] = parts(0, 2);
      return `Parse(${name},${text})`;
    }
    case 'B': {
      const [portal, stmt] = parts(0, 2);
      return `Bind(${portal},${stmt})`;
    }
    case 'D':
    case 'C':
      return `${type === 'D' ? 'Describe' : 'Close'}(${String.fromCharCode(body[0])},${parts(1, 1)[0]})`;
    default:
      return type;
  }
}

function run(statements: ClientStatements, server: FakeServer, type: number, frame: Buffer): Buffer[] {
  const out: Buffer[] = [];
  statements.rewrite(type, frame, server, out);
  return out;
}

describe('ClientStatements: Parse', () => {
  it('prepares a named statement under a server name derived from its text', () => {
    const names = new StatementNames();
    const client = new ClientStatements(names);
    const server = new FakeServer();
    const out = run(client, server, P, parseMessage('s1', 'select $1::int', ONE_INT4));
    expect(out.map(decode)).toEqual(['Close(S,sg_1)', 'Parse(sg_1,select $1::int)']);
    // Parameter types survive the rewrite byte for byte.
    expect(out[1].subarray(out[1].length - ONE_INT4.length).equals(ONE_INT4)).toBe(true);
    expect(server.swallowed).toEqual([0x33]); // the injected Close's CloseComplete only
    expect(server.prepared.names()).toEqual(['sg_1']);
    expect(server.unconfirmed).toEqual(['sg_1']);
    expect(client.size).toBe(1);
  });

  it('shares one server name among clients preparing the same text, under any client name', () => {
    const names = new StatementNames();
    const a = new ClientStatements(names);
    const b = new ClientStatements(names);
    const server = new FakeServer();
    run(a, server, P, parseMessage('mine', 'select 1', NO_TYPES));
    const out = run(b, server, P, parseMessage('theirs', 'select 1', NO_TYPES));
    // The server already has it: an unnamed Parse of the same text earns b its ParseComplete.
    expect(out.map(decode)).toEqual(['Parse(,select 1)']);
    expect(server.swallowed).toEqual([0x33]);
    expect(names.size).toBe(1);
  });

  it('gives different texts, or the same text with different parameter types, different names', () => {
    const names = new StatementNames();
    const a = new ClientStatements(names);
    const server = new FakeServer();
    run(a, server, P, parseMessage('q', 'select $1', NO_TYPES));
    const other = run(a, server, P, parseMessage('q', 'select $1 + 1', NO_TYPES));
    const typedOut = run(a, server, P, parseMessage('q2', 'select $1', ONE_INT4));
    expect(other.map(decode)).toEqual(['Close(S,sg_2)', 'Parse(sg_2,select $1 + 1)']);
    expect(typedOut.map(decode)).toEqual(['Close(S,sg_3)', 'Parse(sg_3,select $1)']);
    expect(names.size).toBe(3);
  });

  it('sends a Parse of a name the client holds (confirmed) under that server name, so the server answers 42P05', () => {
    // PostgreSQL keeps the first statement and answers 42P05 (found by the protocol fuzzer: the proxy used to remap).
    const names = new StatementNames();
    const a = new ClientStatements(names);
    a.isDuplicateRefused = true;
    const server = new FakeServer();
    run(a, server, P, parseMessage('q', 'select 1', NO_TYPES));
    server.prepared.confirm('sg_1'); // the batch that prepared it ended without error
    const again = run(a, server, P, parseMessage('q', 'select 2', NO_TYPES));
    expect(again.map(decode)).toEqual(['Parse(sg_1,select 2)']);
    expect(a.textOf('q')).toBe('select 1');
    expect(names.size).toBe(1);
  });

  it('passes an unnamed Parse through untouched', () => {
    const client = new ClientStatements(new StatementNames());
    const server = new FakeServer();
    const frame = parseMessage('', 'select 1', NO_TYPES);
    const out = run(client, server, P, frame);
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(frame);
    expect(server.prepared.size).toBe(0);
    expect(server.swallowed).toEqual([]);
  });
});

describe('ClientStatements: Bind and Describe', () => {
  function prepared(): { client: ClientStatements; names: StatementNames; server: FakeServer } {
    const names = new StatementNames();
    const client = new ClientStatements(names);
    const server = new FakeServer();
    run(client, server, P, parseMessage('s1', 'select $1::int', ONE_INT4));
    server.swallowed.length = 0;
    server.unconfirmed.length = 0;
    return { client, names, server };
  }

  it('rewrites Bind to the server name, keeping portal and parameters', () => {
    const { client, server } = prepared();
    const out = run(client, server, B, bind('portal1', 's1'));
    expect(out.map(decode)).toEqual(['Bind(portal1,sg_1)']);
    expect(out[0].subarray(out[0].length - BIND_TAIL.length).equals(BIND_TAIL)).toBe(true);
    expect(server.swallowed).toEqual([]);
  });

  it('rewrites Describe of a statement, leaves Describe of a portal alone', () => {
    const { client, server } = prepared();
    expect(run(client, server, D, describeMsg('S', 's1')).map(decode)).toEqual(['Describe(S,sg_1)']);
    const portal = describeMsg('P', 's1');
    expect(run(client, server, D, portal)[0]).toBe(portal);
  });

  it('re-prepares on a server lacking the statement: Close+Parse before Bind, both replies swallowed', () => {
    const { client } = prepared();
    const fresh = new FakeServer();
    const out = run(client, fresh, B, bind('', 's1'));
    expect(out.map(decode)).toEqual(['Close(S,sg_1)', 'Parse(sg_1,select $1::int)', 'Bind(,sg_1)']);
    expect(fresh.swallowed).toEqual([0x33, 0x31]);
    expect(fresh.prepared.names()).toEqual(['sg_1']);
    expect(fresh.unconfirmed).toEqual(['sg_1']);
    // Once prepared there, a second Bind needs nothing more.
    expect(run(client, fresh, B, bind('', 's1')).map(decode)).toEqual(['Bind(,sg_1)']);
  });

  it('re-prepares before a Describe too', () => {
    const { client } = prepared();
    const fresh = new FakeServer();
    const out = run(client, fresh, D, describeMsg('S', 's1'));
    expect(out.map(decode)).toEqual(['Close(S,sg_1)', 'Parse(sg_1,select $1::int)', 'Describe(S,sg_1)']);
    expect(fresh.swallowed).toEqual([0x33, 0x31]);
  });

  it('passes unnamed and unknown statements through untouched', () => {
    const { client, server } = prepared();
    for (const frame of [
      bind('', ''),
      bind('p', 'unknown'),
      describeMsg('S', ''),
      describeMsg('S', 'nope'),
    ]) {
      const out = run(client, server, frame[0], frame);
      expect(out).toHaveLength(1);
      expect(out[0]).toBe(frame);
    }
    expect(server.swallowed).toEqual([]);
  });
});

describe('ClientStatements: Close', () => {
  it('answers Close of a statement with a harmless close and forgets the mapping', () => {
    const names = new StatementNames();
    const client = new ClientStatements(names);
    const server = new FakeServer();
    run(client, server, P, parseMessage('s1', 'select 1', NO_TYPES));
    const out = run(client, server, C, close('S', 's1'));
    expect(out).toHaveLength(1);
    expect(out[0].equals(closeStatement('sg_never'))).toBe(true);
    // The server copy stays for other clients sharing the text.
    expect(server.prepared.has('sg_1')).toBe(true);
    expect(client.size).toBe(0);
    // The client's name is free again: a Bind of it now reaches the server unchanged (it answers 26000).
    const b = bind('', 's1');
    expect(run(client, server, B, b)[0]).toBe(b);
  });

  it('passes Close of a portal or of the unnamed statement through untouched', () => {
    const client = new ClientStatements(new StatementNames());
    const server = new FakeServer();
    for (const frame of [close('P', 'portal'), close('S', '')]) {
      expect(run(client, server, C, frame)[0]).toBe(frame);
    }
  });

  it('clear() forgets every mapping', () => {
    const client = new ClientStatements(new StatementNames());
    const server = new FakeServer();
    run(client, server, P, parseMessage('s1', 'select 1', NO_TYPES));
    client.clear();
    const b = bind('', 's1');
    expect(run(client, server, B, b)[0]).toBe(b);
  });
});

describe('ClientStatements: malformed frames', () => {
  it('throws on unterminated names', () => {
    const client = new ClientStatements(new StatementNames());
    const server = new FakeServer();
    const bad = [
      typed('P', Buffer.from('name-without-nul')),
      typed('B', Buffer.from('portal\0stmt-without-nul')),
      typed('B', Buffer.from('portal-without-nul')),
      typed('D', Buffer.from('Sname-without-nul')),
      typed('C', Buffer.from('Sname-without-nul')),
    ];
    for (const frame of bad) {
      expect(() => run(client, server, frame[0], frame), String.fromCharCode(frame[0])).toThrow();
    }
    expect(server.prepared.size).toBe(0);
  });
});

describe('the shared statement cache is bounded', () => {
  const text = (i: number): string => `select ${i} as n -- ${'x'.repeat(1000)}`;

  it('drops statements no client uses, least recently released first, beyond its byte limit', () => {
    const names = new StatementNames(() => ({ maxCount: 1_000, maxBytes: 5 * 1300 }));
    const server = new FakeServer();
    const a = new ClientStatements(names);
    for (let i = 0; i < 10; i++) run(a, server, P, parseMessage(`s${i}`, text(i), NO_TYPES));
    // All ten are in use: nothing may go, whatever the limit says.
    expect(names.size).toBe(10);
    a.clear(); // the client is gone
    expect(names.size).toBeLessThanOrEqual(5);
    expect(names.bytes).toBeLessThanOrEqual(5 * 1300);
    expect(names.evictions).toBe(10 - names.size);
  });

  it('keeps a statement another client still uses, and counts a name re-parsed by its client once', () => {
    const names = new StatementNames(() => ({ maxCount: 0, maxBytes: 0 }));
    const server = new FakeServer();
    const a = new ClientStatements(names);
    const b = new ClientStatements(names);
    run(a, server, P, parseMessage('s', text(1), NO_TYPES));
    run(b, server, P, parseMessage('t', text(1), NO_TYPES));
    run(a, server, P, parseMessage('s', text(1), NO_TYPES)); // same name, same text again
    a.clear();
    expect(names.size).toBe(1); // b's
    // b's statement still binds on a server that lacks it: its Parse is there.
    const fresh = new FakeServer();
    expect(run(b, fresh, B, bind('', 't')).map(decode)).toEqual([
      'Close(S,sg_1)',
      `Parse(sg_1,${text(1)})`,
      'Bind(,sg_1)',
    ]);
    b.clear();
    expect(names.size).toBe(0);
  });

  it('gives a text prepared again after its eviction a new name: a server that kept the old one is not confused', () => {
    const names = new StatementNames(() => ({ maxCount: 0, maxBytes: 0 }));
    const server = new FakeServer();
    const first = new ClientStatements(names);
    run(first, server, P, parseMessage('s', text(1), NO_TYPES));
    first.clear(); // evicted at once (limits 0); the server still has sg_1 prepared
    expect(server.prepared.has('sg_1')).toBe(true);
    const other = new ClientStatements(names);
    run(other, server, P, parseMessage('o', text(2), NO_TYPES)); // another text: sg_2, never sg_1 again
    const again = new ClientStatements(names);
    const out = run(again, server, P, parseMessage('s', text(1), NO_TYPES));
    // The same text, evicted meanwhile: a fresh name, prepared on this server as a new statement.
    expect(out.map(decode)).toEqual(['Close(S,sg_3)', `Parse(sg_3,${text(1)})`]);
    expect(run(again, server, B, bind('', 's')).map(decode)).toEqual(['Bind(,sg_3)']);
  });

  it('closes the statements a server holds beyond prepared_statements_limit, and evicted ones, before a batch', () => {
    const names = new StatementNames(() => ({ maxCount: 1_000, maxBytes: 1_000_000 }));
    const server = new FakeServer();
    const client = new ClientStatements(names, () => ({ preparedStatementsLimit: 2 }));
    for (let i = 0; i < 4; i++) run(client, server, P, parseMessage(`s${i}`, text(i), NO_TYPES));
    run(client, server, B, bind('', 's0')); // s0 is now the most recently used
    server.swallowed.length = 0;
    const out: Buffer[] = [];
    client.beginBatch(server, out);
    expect(out.map(decode)).toEqual(['Close(S,sg_2)', 'Close(S,sg_3)']);
    expect(server.swallowed).toEqual([0x33, 0x33]);
    expect(server.prepared.names()).toEqual(['sg_4', 'sg_1']);
    // A closed statement the client uses again is prepared again by the batch that needs it.
    expect(run(client, server, B, bind('', 's1')).map(decode)).toEqual([
      'Close(S,sg_2)',
      `Parse(sg_2,${text(1)})`,
      'Bind(,sg_2)',
    ]);
    // Within the limit, a statement the cache dropped is closed when it reaches the old end.
    const lone = new StatementNames(() => ({ maxCount: 0, maxBytes: 0 }));
    const solo = new ClientStatements(lone, () => ({ preparedStatementsLimit: 100 }));
    const other = new FakeServer();
    run(solo, other, P, parseMessage('gone', text(9), NO_TYPES));
    solo.clear();
    const closes: Buffer[] = [];
    solo.beginBatch(other, closes);
    expect(closes.map(decode)).toEqual(['Close(S,sg_1)']);
    expect(other.prepared.size).toBe(0);
  });
});

describe('ClientStatements: the position of what it injects', () => {
  it("names each injected Close / Parse by its place among the write's Closes / Parses since its last Sync", () => {
    const names = new StatementNames();
    const client = new ClientStatements(names);
    const first = new FakeServer();
    run(client, first, P, parseMessage('s2', 'select 2', NO_TYPES)); // known to the client, prepared elsewhere
    const server = new FakeServer();
    const out: Buffer[] = [];
    client.beginBatch(server, out);
    const batch: [number, Buffer][] = [
      [Frontend.Close, close('S', 'gone')], // the client's own Close
      [P, parseMessage('s1', 'select 1', NO_TYPES)], // a new statement: injected Close, the client's Parse
      [Frontend.Bind, bind('', 's1')],
      [Frontend.Execute, typed('E', Buffer.from('\0\0\0\0\0'))],
      [Frontend.Bind, bind('', 's2')], // not on this server: injected Close + Parse
      [Frontend.Sync, typed('S', Buffer.alloc(0))],
      [Frontend.Bind, bind('', 's2')], // after the Sync: a window of its own
    ];
    for (const [type, frame] of batch) client.rewrite(type, frame, server, out);
    expect(out.map(decode)).toEqual([
      'Close(S,sg_never)', // the client's Close, of a name no server has
      'Close(S,sg_2)',
      'Parse(sg_2,select 1)',
      'Bind(,sg_2)',
      'E',
      'Close(S,sg_1)',
      'Parse(sg_1,select 2)',
      'Bind(,sg_1)',
      'S',
      'Bind(,sg_1)',
    ]);
    // CloseComplete #2 (not the client's #1), then CloseComplete #3 and ParseComplete #2 (not the client's #1).
    expect(server.positions).toEqual(['32', '33', '12']);
    expect([client.writeParses, client.writeCloses, client.isNewWindow]).toEqual([0, 0, true]);
  });
});

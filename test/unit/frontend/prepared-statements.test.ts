// Unit tests for named prepared statements under transaction pooling: name mapping, rewriting of
// Parse/Bind/Describe/Close, re-preparation on servers that lack a statement, and malformed frames.
import { describe, expect, it } from 'vitest';
import {
  ClientStatements,
  StatementNames,
  type StatementServer,
} from '../../../src/frontend/prepared-statements.js';
import { closeStatement, parseMessage } from '../../../src/protocol/messages.js';

const P = 0x50;
const B = 0x42;
const D = 0x44;
const C = 0x43;
const NO_TYPES = Buffer.from([0, 0]);
const ONE_INT4 = Buffer.from([0, 1, 0, 0, 0, 23]);

class FakeServer implements StatementServer {
  readonly prepared = new Set<string>();
  readonly unconfirmed: string[] = [];
  readonly swallowed: number[] = [];
  swallowNext(type: number): void {
    this.swallowed.push(type);
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
    expect([...server.prepared]).toEqual(['sg_1']);
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
    expect([...fresh.prepared]).toEqual(['sg_1']);
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

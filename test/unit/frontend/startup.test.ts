// Unit tests for startup-phase packet decoding: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest, bad input,
// and the replication parameter.
import { describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import {
  MAX_STARTUP_PACKET_BYTES,
  readStartupPacket,
  replicationMode,
} from '../../../src/frontend/startup.js';
import { cancelRequest, startupMessage } from '../../../src/protocol/messages.js';

function packet(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(code, 4);
  body.copy(out, 8);
  return out;
}

/** `isSilent`: PostgreSQL closes without a reply; else it sends FATAL `code`. */
function expectError(buf: Buffer, pattern: RegExp, isSilent = false, code = '08P01'): void {
  const r = readStartupPacket(buf);
  expect(r.ok).toBe(false);
  if (r.ok || r.incomplete) throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  expect(r.error).toMatch(pattern);
  expect(r.isSilent).toBe(isSilent);
  if (!isSilent) expect(r.code).toBe(code);
}

describe('readStartupPacket', () => {
  it('decodes StartupMessage parameters and returns the bytes after the packet', () => {
    const msg = startupMessage({ user: 'alice', database: 'shop', application_name: 'psql', options: '' });
    const extra = Buffer.from([0x70, 1, 2]);
    const r = readStartupPacket(Buffer.concat([msg, extra]));
    if (!r.ok) throw new Error(JSON.stringify(r));
    expect(r.packet).toEqual({
      kind: 'startup',
      params: new Map([
        ['user', 'alice'],
        ['database', 'shop'],
        ['application_name', 'psql'],
        ['options', ''],
      ]),
    });
    expect(r.rest.equals(extra)).toBe(true);
  });

  it('accepts a StartupMessage with no parameters at all', () => {
    const r = readStartupPacket(packet(196608, Buffer.from([0])));
    expect(r.ok && r.packet.kind === 'startup' && r.packet.params.size).toBe(0);
  });

  it('waits for more bytes while a packet is incomplete', () => {
    const msg = startupMessage({ user: 'alice' });
    for (let i = 0; i < msg.length; i++) {
      expect(readStartupPacket(msg.subarray(0, i))).toEqual({ ok: false, incomplete: true });
    }
  });

  it('recognises SSLRequest and GSSENCRequest', () => {
    const ssl = readStartupPacket(packet(80877103));
    expect(ssl.ok && ssl.packet).toEqual({ kind: 'ssl' });
    const gss = readStartupPacket(packet(80877104));
    expect(gss.ok && gss.packet).toEqual({ kind: 'gssenc' });
  });

  it('decodes a CancelRequest and rejects one of the wrong length', () => {
    const r = readStartupPacket(cancelRequest(1234, -5678));
    expect(r.ok && r.packet).toEqual({ kind: 'cancel', pid: 1234, secret: -5678 });
    expectError(packet(80877102, Buffer.alloc(4)), /CancelRequest/, true);
    expectError(packet(80877102, Buffer.alloc(12)), /CancelRequest/, true);
  });

  it('closes silently on lengths below 8 and above the startup limit plus the length word, as PostgreSQL', () => {
    for (const len of [0, 3, 7, MAX_STARTUP_PACKET_BYTES + 5, 100_000, -1]) {
      const buf = Buffer.alloc(8);
      buf.writeInt32BE(len, 0);
      buf.writeInt32BE(196608, 4);
      expectError(buf, new RegExp(`invalid startup packet length ${len}`), true);
    }
  });

  it('reads a packet of the limit plus the length word (PostgreSQL counts the limit after it)', () => {
    const body = Buffer.alloc(MAX_STARTUP_PACKET_BYTES - 4);
    Buffer.from('user\0alice\0').copy(body);
    const r = readStartupPacket(packet(196608, body));
    expect(r.ok).toBe(false);
    if (r.ok || r.incomplete) throw new Error('expected a layout error');
    expect(r.error).toMatch(/layout/); // read whole, then refused for its zero padding, not for its length
  });

  it('rejects an impossible length as soon as the length field is in (PostgreSQL does not wait)', () => {
    for (const len of [3, 100_000]) {
      const buf = Buffer.alloc(4);
      buf.writeInt32BE(len, 0);
      expectError(buf, /invalid startup packet length/, true);
    }
  });

  it('rejects protocol 2.0 and other versions, naming them', () => {
    expectError(
      packet(0x00020000, Buffer.from('user\0x\0\0')),
      /2\.0: server supports 3\.0 to 3\.0/,
      false,
      '0A000',
    );
    expectError(packet(0x00040000, Buffer.from([0])), /4\.0/, false, '0A000');
    expectError(
      packet(0x12345678, Buffer.from([0])),
      /unsupported frontend protocol 4660\.22136/,
      false,
      '0A000',
    );
  });

  it('rejects a parameter list without its final terminator', () => {
    expectError(
      packet(196608, Buffer.from('user\0alice\0')),
      /invalid startup packet layout: expected terminator as last byte/,
    );
    expectError(
      packet(196608, Buffer.from('user\0alice')),
      /invalid startup packet layout: expected terminator as last byte/,
    );
    expectError(
      packet(196608, Buffer.from('user')),
      /invalid startup packet layout: expected terminator as last byte/,
    );
    expectError(
      packet(196608, Buffer.from('user\0alice\0\0junk')),
      /invalid startup packet layout: expected terminator as last byte/,
    );
  });

  it('rejects text that is not a startup packet', () => {
    expectError(Buffer.from('GET / HTTP/1.1\r\n\r\n'), /invalid startup packet length/, true);
  });
});

describe('replicationMode (the replication startup parameter, as ProcessStartupPacket reads it)', () => {
  it('reads "database" as logical and parse_bool spellings as physical or none', () => {
    expect(replicationMode(undefined)).toBe('none');
    expect(replicationMode('database')).toBe('logical');
    for (const yes of ['true', 'TRUE', 't', 'tr', 'yes', 'y', 'on', 'ON', '1'])
      expect(replicationMode(yes)).toBe('physical');
    for (const no of ['false', 'f', 'no', 'n', 'off', 'of', '0']) expect(replicationMode(no)).toBe('none');
  });

  it("refuses anything else with PostgreSQL's FATAL 22023 and hint", () => {
    for (const bad of ['', 'o', 'truex', 'Database', '2', 'logical']) {
      const err = replicationMode(bad);
      if (!(err instanceof PgError)) throw new Error(`accepted ${JSON.stringify(bad)}`);
      expect(err.severity).toBe('FATAL');
      expect(err.code).toBe('22023');
      expect(err.message).toBe(`invalid value for parameter "replication": "${bad}"`);
      expect(err.hint).toBe('Valid values are: "false", 0, "true", 1, "database".');
    }
  });
});

// Unit tests for client authentication (trust, md5, SCRAM-SHA-256) driven by real client-side computations.
import { describe, expect, it } from 'vitest';
import { ClientAuth, type AuthOutcome } from '../../../src/frontend/client-auth.js';
import { md5PasswordHash, md5StoredHash } from '../../../src/auth/md5.js';
import { ScramClientSession } from '../../../src/auth/scram-client.js';
import { formatScramSecret, scramSecretFromPassword } from '../../../src/auth/scram-common.js';
import { PgError } from '../../../src/errors/pg-error.js';

const USER = 'alice';
const PASSWORD = 'correct horse';

function passwordFrame(body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = 0x70; // 'p'
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function saslInitial(mechanism: string, data: string): Buffer {
  const d = Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeInt32BE(d.length);
  return passwordFrame(Buffer.concat([Buffer.from(`${mechanism}\0`), len, d]));
}

/** Authentication request: [sub-code, payload after it]. */
function authRequest(frame: Buffer): { code: number; payload: Buffer } {
  expect(String.fromCharCode(frame[0])).toBe('R');
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  return { code: frame.readInt32BE(5), payload: frame.subarray(9) };
}

function continued(outcome: AuthOutcome): Buffer {
  if (outcome.kind !== 'continue') throw new Error(`expected continue, got ${outcome.kind}`);
  return outcome.reply;
}

function expectFailure(outcome: AuthOutcome, code: string): PgError {
  if (outcome.kind !== 'fail') throw new Error(`expected fail, got ${outcome.kind}`);
  expect(outcome.error).toBeInstanceOf(PgError);
  expect(outcome.error.code).toBe(code);
  expect(outcome.error.severity).toBe('FATAL');
  return outcome.error;
}

function expectAuthOk(frame: Buffer): void {
  expect(authRequest(frame).code).toBe(0);
  expect(frame.length).toBe(9);
}

function md5Login(configured: string | null, sentPassword: string): AuthOutcome {
  const auth = new ClientAuth('md5', USER, configured);
  const req = authRequest(continued(auth.start()));
  expect(req.code).toBe(5);
  expect(req.payload).toHaveLength(4);
  const hash = md5PasswordHash(USER, sentPassword, req.payload);
  return auth.handle(passwordFrame(Buffer.from(`${hash}\0`)));
}

/** Runs a full SCRAM exchange; returns the final outcome and the client session (to verify the server). */
function scramLogin(
  configured: string | null,
  sentPassword: string,
): { outcome: AuthOutcome; client: ScramClientSession } {
  const auth = new ClientAuth('scram', USER, configured);
  const req = authRequest(continued(auth.start()));
  expect(req.code).toBe(10);
  expect(req.payload.toString().split('\0')).toContain('SCRAM-SHA-256');
  const client = new ScramClientSession(sentPassword);
  const cont = authRequest(continued(auth.handle(saslInitial('SCRAM-SHA-256', client.clientFirst()))));
  expect(cont.code).toBe(11);
  const clientFinal = client.handleServerFirst(cont.payload.toString());
  return { outcome: auth.handle(passwordFrame(Buffer.from(clientFinal))), client };
}

describe('ClientAuth trust', () => {
  it('accepts at once with AuthenticationOk', () => {
    const outcome = new ClientAuth('trust', USER, null).start();
    if (outcome.kind !== 'ok') throw new Error(outcome.kind);
    expect(outcome.reply).toHaveLength(1);
    expectAuthOk(outcome.reply[0]);
  });
});

describe('ClientAuth md5', () => {
  it('accepts the right password', () => {
    const outcome = md5Login(PASSWORD, PASSWORD);
    if (outcome.kind !== 'ok') throw new Error(outcome.kind);
    expectAuthOk(outcome.reply[0]);
  });

  it('accepts a configured stored md5 hash', () => {
    expect(md5Login(md5StoredHash(USER, PASSWORD), PASSWORD).kind).toBe('ok');
  });

  it('uses a fresh salt per attempt', () => {
    const salts = new Set<string>();
    for (let i = 0; i < 8; i++) {
      salts.add(
        authRequest(continued(new ClientAuth('md5', USER, PASSWORD).start())).payload.toString('hex'),
      );
    }
    expect(salts.size).toBeGreaterThan(1);
  });

  it('rejects a wrong password with 28P01 naming the user', () => {
    const err = expectFailure(md5Login(PASSWORD, 'wrong'), '28P01');
    expect(err.message).toContain(`"${USER}"`);
  });

  it('rejects when no password is configured', () => {
    expectFailure(md5Login(null, PASSWORD), '28P01');
  });

  it('answers a malformed password message with 08P01', () => {
    const auth = new ClientAuth('md5', USER, PASSWORD);
    auth.start();
    expectFailure(auth.handle(passwordFrame(Buffer.from('md5-no-terminator'))), '08P01');
  });
});

describe('ClientAuth SCRAM-SHA-256', () => {
  it('accepts the right password, and the client can verify the server', () => {
    const { outcome, client } = scramLogin(PASSWORD, PASSWORD);
    if (outcome.kind !== 'ok') throw new Error(outcome.kind);
    expect(outcome.reply).toHaveLength(2);
    const final = authRequest(outcome.reply[0]);
    expect(final.code).toBe(12);
    expect(() => client.verifyServerFinal(final.payload.toString())).not.toThrow();
    expectAuthOk(outcome.reply[1]);
  });

  it('accepts a configured stored SCRAM secret', () => {
    const stored = formatScramSecret(scramSecretFromPassword(PASSWORD));
    expect(scramLogin(stored, PASSWORD).outcome.kind).toBe('ok');
  });

  it('rejects a wrong password with 28P01', () => {
    expectFailure(scramLogin(PASSWORD, 'wrong').outcome, '28P01');
  });

  it('rejects when no password is configured', () => {
    const auth = new ClientAuth('scram', USER, null);
    auth.start();
    const client = new ScramClientSession(PASSWORD);
    expectFailure(auth.handle(saslInitial('SCRAM-SHA-256', client.clientFirst())), '28P01');
  });

  it('rejects an unsupported mechanism with 08P01', () => {
    const auth = new ClientAuth('scram', USER, PASSWORD);
    auth.start();
    const err = expectFailure(
      auth.handle(saslInitial('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc')),
      '08P01',
    );
    expect(err.message).toContain('SCRAM-SHA-256-PLUS');
  });

  it('answers malformed SASL messages with 08P01', () => {
    const noTerminator = new ClientAuth('scram', USER, PASSWORD);
    noTerminator.start();
    expectFailure(noTerminator.handle(passwordFrame(Buffer.from('SCRAM-SHA-256'))), '08P01');

    const badLength = new ClientAuth('scram', USER, PASSWORD);
    badLength.start();
    const frame = saslInitial('SCRAM-SHA-256', 'n,,n=,r=abcdef');
    frame.writeInt32BE(1000, 5 + 'SCRAM-SHA-256\0'.length);
    expectFailure(badLength.handle(frame), '08P01');

    const garbage = new ClientAuth('scram', USER, PASSWORD);
    garbage.start();
    expectFailure(garbage.handle(saslInitial('SCRAM-SHA-256', 'not scram at all')), '08P01');
  });

  it('refuses a third SASL message after the exchange', () => {
    const auth = new ClientAuth('scram', USER, PASSWORD);
    auth.start();
    const client = new ScramClientSession(PASSWORD);
    const cont = authRequest(continued(auth.handle(saslInitial('SCRAM-SHA-256', client.clientFirst()))));
    const clientFinal = client.handleServerFirst(cont.payload.toString());
    expect(auth.handle(passwordFrame(Buffer.from(clientFinal))).kind).toBe('ok');
    expectFailure(auth.handle(passwordFrame(Buffer.from(clientFinal))), '08P01');
  });
});

describe('ClientAuth cleartext (passthrough_auth)', () => {
  it('asks for the password in clear text and hands it over for the servers to judge', () => {
    const auth = new ClientAuth('cleartext', USER, null);
    expect(authRequest(continued(auth.start())).code).toBe(3);
    expect(auth.responseName).toBe('password');
    expect(auth.maxFrameBytes).toBe(1 + 65_535);
    expect(auth.handle(passwordFrame(Buffer.from(`${PASSWORD}\0`)))).toEqual({
      kind: 'password',
      password: PASSWORD,
    });
    expectFailure(new ClientAuth('cleartext', USER, null).handle(passwordFrame(Buffer.from('x'))), '08P01');
  });
});

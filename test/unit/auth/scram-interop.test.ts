// Interop tests: node-postgres's SCRAM client against our ScramServerSession, and the PostgreSQL secret format.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ScramClientSession } from '../../../src/auth/scram-client.js';
import {
  formatScramSecret,
  parseScramSecret,
  saslPrep,
  scramSecretFromPassword,
} from '../../../src/auth/scram-common.js';
import { ScramServerSession } from '../../../src/auth/scram-server.js';

/** The parts of pg/lib/crypto/sasl.js we drive (it ships no type declarations). */
interface PgSaslSession {
  mechanism: string;
  response: string;
}
interface PgSasl {
  startSession(mechanisms: string[], stream?: object): PgSaslSession;
  continueSession(
    session: PgSaslSession,
    password: string,
    serverData: string,
    stream?: object,
  ): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}

const pgSasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as PgSasl;

/** Runs node-postgres's client against our server; returns our server's verdict. */
async function pgClientAgainstOurServer(clientPassword: string, serverPassword: string, stream?: object) {
  const server = new ScramServerSession(scramSecretFromPassword(serverPassword));
  const session = pgSasl.startSession([server.mechanism], stream);
  const serverFirst = server.handleClientFirst(session.response);
  await pgSasl.continueSession(session, clientPassword, serverFirst, stream);
  const result = server.handleClientFinal(session.response);
  if (result.ok && result.serverFinal !== null) pgSasl.finalizeSession(session, result.serverFinal);
  return { result };
}

describe('node-postgres SCRAM client against ScramServerSession', () => {
  it('authenticates with the right password and verifies our server signature', async () => {
    const { result } = await pgClientAgainstOurServer('hunter2', 'hunter2');
    expect(result.ok).toBe(true);
  });

  it('is refused with a wrong password', async () => {
    const { result } = await pgClientAgainstOurServer('hunter3', 'hunter2');
    expect(result).toEqual({ ok: false, serverFinal: null });
  });

  it('works with the "y,," GS2 header (client supports channel binding, server does not offer it)', async () => {
    const { result } = await pgClientAgainstOurServer('hunter2', 'hunter2', {});
    expect(result.ok).toBe(true);
  });

  it('agrees with node-postgres on SASLprep for non-ASCII passwords', async () => {
    for (const password of ['p\u00e4ssw\u00f6rd', 'pa\u00a0ss', 'I\u2168', 'a\u00adb', 'e\u0301te\u0301']) {
      expect((await pgClientAgainstOurServer(password, password)).result.ok).toBe(true);
    }
    expect((await pgClientAgainstOurServer('I\u2168', 'IIX')).result.ok).toBe(true);
  });
});

describe('PostgreSQL secret format', () => {
  it('round-trips scramSecretFromPassword through the stored form', () => {
    const secret = scramSecretFromPassword('hunter2', Buffer.from('0123456789abcdef'), 4096);
    const text = formatScramSecret(secret);
    expect(text).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/);
    expect(parseScramSecret(text)).toEqual(secret);
  });

  it('derives exactly the secrets PostgreSQL 15 stored (CREATE ROLE ... PASSWORD, SASLprep cases)', () => {
    // rolpassword values captured from a real PostgreSQL 15.18 with password_encryption=scram-sha-256.
    const captured: Array<[string, string]> = [
      [
        'hunter2',
        'SCRAM-SHA-256$4096:hdFTBFAfh5tcj9+fatpIpA==$72N2n5lQaTi/uV0iW3yu1+YOPAqoKrnH0+jzWmqG4PU=:IRappreBbEFNSNoQtLNwO5yXGA4YKF2bHxj64TRSWXc=',
      ],
      [
        'p\u00e4ssw\u00f6rd I\u2168 \u00a0x', // NFKC + non-ASCII space mapping
        'SCRAM-SHA-256$4096:1/Gag8I/qRnq3nF5jbURUw==$6xRpEZ3L4VSTd+NmlphzPNXhotcf8awcBCPovxNwteU=:KlbgF34j8va/4vCbE2VZQw6OpnygA+sh1z9S53rQvRM=',
      ],
      [
        '\u00e9\u0007bad', // prohibited character: PostgreSQL falls back to the raw bytes
        'SCRAM-SHA-256$4096:3PIyhhH02u/TLb6N07YZZg==$eKrazd3P26u5j7I3Idf2sREqd1GUMdPhzaVBuD3WGaM=:l2qzMMo4wA2BF6piG7mrUKlVZu8MeFete2WI1hTwB5Q=',
      ],
      [
        '\u00e9t\u00e9', // stored from the NFD spelling "e\u0301te\u0301"
        'SCRAM-SHA-256$4096:mXLJ1DLuhrvWosiF3gJVgQ==$75mfq8SoDOoMMs1MHFxwUzfRbnt6DBab1xSz7mA8VIM=:0fQRcDKTiLmzeQTn+Js/gd9M7QBrp02mab4VxpBkTME=',
      ],
    ];
    for (const [password, stored] of captured) {
      const parsed = parseScramSecret(stored);
      if (parsed === null) throw new Error(`did not parse: ${stored}`);
      expect(scramSecretFromPassword(password, parsed.salt, parsed.iterations), password).toEqual(parsed);
      expect(formatScramSecret(parsed)).toBe(stored);
    }
  });

  it('lets our client log in against a parsed secret', () => {
    const secret = parseScramSecret(formatScramSecret(scramSecretFromPassword('hunter2')));
    if (secret === null) throw new Error('secret did not parse');
    for (const [password, ok] of [
      ['hunter2', true],
      ['hunter3', false],
    ] as const) {
      const server = new ScramServerSession(secret);
      const client = new ScramClientSession(password);
      const clientFinal = client.handleServerFirst(server.handleClientFirst(client.clientFirst()));
      const result = server.handleClientFinal(clientFinal);
      expect(result.ok).toBe(ok);
      if (ok) client.verifyServerFinal(result.serverFinal ?? '');
    }
  });

  it('uses a 16-byte random salt and 4096 iterations by default', () => {
    const a = scramSecretFromPassword('x');
    expect(a.iterations).toBe(4096);
    expect(a.salt).toHaveLength(16);
    expect(a.salt.equals(scramSecretFromPassword('x').salt)).toBe(false);
  });

  it('returns null for strings that are not a SCRAM secret', () => {
    const key = Buffer.alloc(32, 1).toString('base64');
    const bad = [
      '',
      'hunter2',
      'md53175bce1d3201d16594cebf9d7eb3f9d',
      `SCRAM-SHA-1$4096:c2FsdA==$${key}:${key}`,
      `SCRAM-SHA-256$0:c2FsdA==$${key}:${key}`,
      `SCRAM-SHA-256$abc:c2FsdA==$${key}:${key}`,
      `SCRAM-SHA-256$4096:c2FsdA==$${key}`,
      `SCRAM-SHA-256$4096:not*b64$${key}:${key}`,
      `SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:${key}`,
      `SCRAM-SHA-256$4096:c2FsdA==$${key}:${key}$extra`,
    ];
    for (const s of bad) expect(parseScramSecret(s), s).toBeNull();
    expect(parseScramSecret(`SCRAM-SHA-256$4096:c2FsdA==$${key}:${key}`)).not.toBeNull();
  });
});

describe('saslPrep', () => {
  it('keeps ASCII as is and NFKC-normalizes the rest', () => {
    expect(saslPrep('pencil')).toBe('pencil');
    expect(saslPrep('a b\tc')).toBe('a b\tc');
    expect(saslPrep('I\u2168')).toBe('IIX');
    expect(saslPrep('pa\u00a0ss')).toBe('pa ss');
    expect(saslPrep('a\u00adb')).toBe('ab');
  });

  it('falls back to the raw password when SASLprep fails, like PostgreSQL', () => {
    expect(saslPrep('\u00ad')).toBe('\u00ad'); // maps to nothing → empty → raw
    expect(saslPrep('\u00e9\u0007')).toBe('\u00e9\u0007'); // prohibited control character
    expect(saslPrep('\u00e9\ue000')).toBe('\u00e9\ue000'); // private use
  });
});

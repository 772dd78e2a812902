// Unit tests for the SCRAM-SHA-256 server and client sessions: RFC 7677 vector, round trips, malformed input.
import { describe, expect, it } from 'vitest';
import { ScramClientSession, ScramError } from '../../../src/auth/scram-client.js';
import { scramSecretFromPassword } from '../../../src/auth/scram-common.js';
import { ScramServerSession } from '../../../src/auth/scram-server.js';

// RFC 7677 §3 example exchange.
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonceSuffix: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const rfcSecret = scramSecretFromPassword(RFC.password, RFC.salt, 4096);
const rfcServer = (): ScramServerSession =>
  new ScramServerSession(rfcSecret, { nonce: () => RFC.serverNonceSuffix });
const rfcClient = (password = RFC.password): ScramClientSession =>
  new ScramClientSession(password, { username: 'user', nonce: () => RFC.clientNonce });

/** Runs our client against our server up to the client-final-message. */
function exchange(clientPassword: string, serverPassword: string) {
  const server = new ScramServerSession(scramSecretFromPassword(serverPassword));
  const client = new ScramClientSession(clientPassword);
  const serverFirst = server.handleClientFirst(client.clientFirst());
  const clientFinal = client.handleServerFirst(serverFirst);
  return { server, client, serverFirst, clientFinal };
}

describe('RFC 7677 test vector', () => {
  it('server produces the RFC server-first and ServerSignature and accepts the RFC ClientProof', () => {
    const server = rfcServer();
    expect(server.mechanism).toBe('SCRAM-SHA-256');
    expect(server.handleClientFirst(RFC.clientFirst)).toBe(RFC.serverFirst);
    expect(server.handleClientFinal(RFC.clientFinal)).toEqual({ ok: true, serverFinal: RFC.serverFinal });
  });

  it('client produces the RFC client-first and ClientProof and accepts the RFC ServerSignature', () => {
    const client = rfcClient();
    expect(client.clientFirst()).toBe(RFC.clientFirst);
    expect(client.handleServerFirst(RFC.serverFirst)).toBe(RFC.clientFinal);
    expect(() => client.verifyServerFinal(RFC.serverFinal)).not.toThrow();
  });

  it('client rejects a server signature that differs from the RFC one', () => {
    const client = rfcClient();
    client.clientFirst();
    client.handleServerFirst(RFC.serverFirst);
    const forged = 'v=' + Buffer.alloc(32, 7).toString('base64');
    expect(() => client.verifyServerFinal(forged)).toThrow(/server signature mismatch/);
  });

  it('server rejects the RFC proof when it holds another password', () => {
    const server = new ScramServerSession(scramSecretFromPassword('pencil2', RFC.salt), {
      nonce: () => RFC.serverNonceSuffix,
    });
    server.handleClientFirst(RFC.clientFirst);
    expect(server.handleClientFinal(RFC.clientFinal)).toEqual({ ok: false, serverFinal: null });
  });
});

describe('our client against our server', () => {
  it('authenticates with the right password, both ways', () => {
    const { server, client, clientFinal } = exchange('s3cret', 's3cret');
    const result = server.handleClientFinal(clientFinal);
    expect(result.ok).toBe(true);
    expect(result.serverFinal).toMatch(/^v=/);
    expect(() => client.verifyServerFinal(result.serverFinal ?? '')).not.toThrow();
  });

  it('sends what libpq sends: no channel binding, empty username, 18-byte base64 nonce', () => {
    const first = new ScramClientSession('x').clientFirst();
    expect(first).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  });

  it('uses fresh nonces for every session', () => {
    expect(new ScramClientSession('x').clientFirst()).not.toBe(new ScramClientSession('x').clientFirst());
  });

  it('returns ok:false and no server-final on a wrong password', () => {
    const { server, clientFinal } = exchange('wrong', 's3cret');
    expect(server.handleClientFinal(clientFinal)).toEqual({ ok: false, serverFinal: null });
  });

  it('normalizes non-ASCII passwords with SASLprep (NFKC) on both sides', () => {
    const { server, clientFinal } = exchange('I\u2168', 'IIX'); // ROMAN NUMERAL NINE → "IX"
    expect(server.handleClientFinal(clientFinal).ok).toBe(true);
    const composed = exchange('\u00e9t\u00e9', 'e\u0301te\u0301'); // NFC vs NFD "été"
    expect(composed.server.handleClientFinal(composed.clientFinal).ok).toBe(true);
  });

  it('rejects c=biws after a "y,," GS2 header (success with "y,," is covered by the pg interop test)', () => {
    const server = new ScramServerSession(scramSecretFromPassword('pw'));
    const client = new ScramClientSession('pw');
    const first = 'y' + client.clientFirst().slice(1);
    const clientFinal = client.handleServerFirst(server.handleClientFirst(first));
    expect(() => server.handleClientFinal(clientFinal)).toThrow(/channel-binding data/);
  });
});

describe('tampering', () => {
  it('server throws ScramError on a tampered nonce in the client-final', () => {
    const { server, clientFinal } = exchange('pw', 'pw');
    const tampered = clientFinal.replace(/,r=([^,]+)/, (_m, r: string) => `,r=${r}X`);
    let error: unknown;
    try {
      server.handleClientFinal(tampered);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ScramError);
    expect((error as ScramError).message).toMatch(/nonce mismatch/);
  });

  it('client throws ScramError when the server nonce does not extend the client nonce', () => {
    const client = rfcClient();
    client.clientFirst();
    expect(() => client.handleServerFirst('r=someoneElse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')).toThrow(
      /server nonce does not extend the client nonce/,
    );
    const client2 = rfcClient();
    client2.clientFirst();
    expect(() => client2.handleServerFirst(`r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`)).toThrow(
      ScramError,
    );
  });

  it('server throws when c= does not match the GS2 header', () => {
    const { server, clientFinal } = exchange('pw', 'pw');
    expect(() => server.handleClientFinal(clientFinal.replace('c=biws', 'c=eSws'))).toThrow(
      /channel-binding/,
    );
  });
});

describe('malformed messages', () => {
  const serverThrows = (clientFirst: string, pattern: RegExp): void => {
    const server = rfcServer();
    expect(() => server.handleClientFirst(clientFirst)).toThrow(ScramError);
    expect(() => server.handleClientFirst(clientFirst)).toThrow(pattern);
  };

  it('client-first without r=', () => serverThrows('n,,n=user', /missing attribute "r="/));
  it('client-first with an empty nonce', () => serverThrows('n,,n=user,r=', /nonce is empty/));
  it('client-first garbage without a GS2 header', () => serverThrows('garbage', /missing GS2 header/));
  it('client-first garbage attributes', () => serverThrows('n,,garbage', /expected "key=value"/));
  it('client-first with an unknown GS2 flag', () => serverThrows('x,,n=,r=abc', /channel-binding flag/));
  it('client-first with an authzid', () => serverThrows('n,a=bob,n=,r=abc', /authorization identity/));
  it('client-first with a mandatory extension', () =>
    serverThrows('n,,m=ext,n=,r=abc', /mandatory extension/));
  it('client-first requesting channel binding', () =>
    serverThrows('p=tls-server-end-point,,n=,r=abc', /channel binding requested.*without channel binding/));

  it('client-final without p=, with a bad proof, or garbage', () => {
    const cases: Array<[string, RegExp]> = [
      ['c=biws,r=' + RFC.clientNonce + RFC.serverNonceSuffix, /missing attribute "p="/],
      ['c=biws,r=' + RFC.clientNonce + RFC.serverNonceSuffix + ',p=!!!', /client proof is not valid base64/],
      ['c=biws,r=' + RFC.clientNonce + RFC.serverNonceSuffix + ',p=AAAA', /client proof has wrong length/],
      ['r=abc,c=biws,p=AAAA', /missing attribute "c="/],
      ['total garbage', /expected "key=value"/],
      ['', /empty message/],
    ];
    for (const [final, pattern] of cases) {
      const server = rfcServer();
      server.handleClientFirst(RFC.clientFirst);
      expect(() => server.handleClientFinal(final)).toThrow(pattern);
    }
  });

  it('server-first with missing or invalid attributes', () => {
    const r = `r=${RFC.clientNonce}abc`;
    const cases: Array<[string, RegExp]> = [
      [`${r},i=4096`, /missing attribute "s="/],
      [`${r},s=W22ZaJ0SNY7soEsUEjb6gQ==`, /missing attribute "i="/],
      [`${r},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`, /invalid iteration count "0"/],
      [`${r},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1`, /invalid iteration count/],
      [`${r},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=abc`, /invalid iteration count/],
      [`${r},s=not*base64,i=4096`, /salt is not valid base64/],
      ['s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /missing attribute "r="/],
      ['garbage', /expected "key=value"/],
    ];
    for (const [serverFirst, pattern] of cases) {
      const client = rfcClient();
      client.clientFirst();
      expect(() => client.handleServerFirst(serverFirst)).toThrow(pattern);
    }
  });

  it('server-final with an error or without v=', () => {
    const cases: Array<[string, RegExp]> = [
      ['e=invalid-proof', /server error "invalid-proof"/],
      ['x=1', /missing attribute "v="/],
      ['v=***', /server signature is not valid base64/],
    ];
    for (const [serverFinal, pattern] of cases) {
      const client = rfcClient();
      client.clientFirst();
      client.handleServerFirst(RFC.serverFirst);
      expect(() => client.verifyServerFinal(serverFinal)).toThrow(pattern);
    }
  });

  it('rejects calls out of order', () => {
    expect(() => rfcServer().handleClientFinal(RFC.clientFinal)).toThrow(/out of order/);
    const server = rfcServer();
    server.handleClientFirst(RFC.clientFirst);
    server.handleClientFinal(RFC.clientFinal);
    expect(() => server.handleClientFinal(RFC.clientFinal)).toThrow(/out of order/);
    expect(() => rfcClient().handleServerFirst(RFC.serverFirst)).toThrow(/out of order/);
    expect(() => rfcClient().verifyServerFinal(RFC.serverFinal)).toThrow(/out of order/);
  });

  it('ScramError is a named Error subclass', () => {
    const err = new ScramError('x');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ScramError');
  });
});

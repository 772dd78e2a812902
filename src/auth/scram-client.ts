// Client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677): what shardgate uses to log in to PostgreSQL servers.
// Sends the same messages as libpq (no channel binding, empty username). Pure logic, no sockets.
import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import {
  type NonceGenerator,
  ScramError,
  checkNonce,
  decodeBase64,
  defaultNonce,
  deriveKeys,
  expectAttribute,
  hmacSha256,
  parseAttributes,
  saltedPassword,
  xorBuffers,
} from './scram-common.js';

export { ScramError } from './scram-common.js';

export interface ScramClientOptions {
  /** Client nonce generator (default: 18 random bytes, base64). */
  nonce?: NonceGenerator;
  /** SCRAM username; PostgreSQL ignores it, libpq sends "" (the default). */
  username?: string;
}

type State = 'initial' | 'first-sent' | 'final-sent' | 'finished';

const GS2_HEADER = 'n,,';
const SERVER_FIRST = 'server-first-message';
const SERVER_FINAL = 'server-final-message';

/** RFC 5802 saslname escaping: ',' → "=2C", '=' → "=3D". */
function escapeUsername(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

interface ServerFirst {
  nonce: string;
  salt: Buffer;
  iterations: number;
}

/** Parses "r=<nonce>,s=<b64 salt>,i=<iterations>[,ext...]". */
function parseServerFirst(serverFirst: string): ServerFirst {
  const attrs = parseAttributes(serverFirst, SERVER_FIRST);
  if (attrs[0]?.key === 'm') {
    throw new ScramError(`SCRAM ${SERVER_FIRST}: mandatory extension "m=" is not supported`);
  }
  const nonce = expectAttribute(attrs, 0, 'r', SERVER_FIRST);
  checkNonce(nonce, SERVER_FIRST);
  const salt = decodeBase64(expectAttribute(attrs, 1, 's', SERVER_FIRST), 'salt', SERVER_FIRST);
  const iterText = expectAttribute(attrs, 2, 'i', SERVER_FIRST);
  const iterations = Number(iterText);
  if (!/^[1-9][0-9]*$/.test(iterText) || !Number.isSafeInteger(iterations)) {
    throw new ScramError(`malformed SCRAM ${SERVER_FIRST}: invalid iteration count "${iterText}"`);
  }
  return { nonce, salt, iterations };
}

export class ScramClientSession {
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private state: State = 'initial';
  private expectedServerSignature: Buffer = Buffer.alloc(0);

  constructor(
    private readonly password: string,
    options: ScramClientOptions = {},
  ) {
    this.clientNonce = (options.nonce ?? defaultNonce)();
    checkNonce(this.clientNonce, 'client nonce');
    this.clientFirstBare = `n=${escapeUsername(options.username ?? '')},r=${this.clientNonce}`;
  }

  /** "n,,n=,r=<nonce>": the SASLInitialResponse data. */
  clientFirst(): string {
    this.expectState('initial', 'clientFirst');
    this.state = 'first-sent';
    return GS2_HEADER + this.clientFirstBare;
  }

  /** server-first-message → client-final-message ("c=biws,r=<nonce>,p=<proof>"). */
  handleServerFirst(serverFirst: string): string {
    this.expectState('first-sent', 'handleServerFirst');
    this.state = 'finished';
    const sv = parseServerFirst(serverFirst);
    if (!sv.nonce.startsWith(this.clientNonce) || sv.nonce.length === this.clientNonce.length) {
      throw new ScramError(`SCRAM ${SERVER_FIRST}: server nonce does not extend the client nonce`);
    }
    const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${sv.nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const { clientKey, storedKey, serverKey } = deriveKeys(
      saltedPassword(this.password, sv.salt, sv.iterations),
    );
    const proof = xorBuffers(clientKey, hmacSha256(storedKey, authMessage));
    this.expectedServerSignature = hmacSha256(serverKey, authMessage);
    this.state = 'final-sent';
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks "v=<server signature>"; throws ScramError on "e=..." or a signature mismatch. */
  verifyServerFinal(serverFinal: string): void {
    this.expectState('final-sent', 'verifyServerFinal');
    this.state = 'finished';
    const attrs = parseAttributes(serverFinal, SERVER_FINAL);
    if (attrs[0].key === 'e')
      throw new ScramError(`SCRAM authentication failed: server error "${attrs[0].value}"`);
    const signature = decodeBase64(
      expectAttribute(attrs, 0, 'v', SERVER_FINAL),
      'server signature',
      SERVER_FINAL,
    );
    const expected = this.expectedServerSignature;
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError('SCRAM server signature mismatch: the server does not know the password');
    }
  }

  private expectState(expected: State, method: string): void {
    if (this.state !== expected) {
      throw new ScramError(`SCRAM client session: ${method} called out of order (state ${this.state})`);
    }
  }
}

// Server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: shardgate verifies its own
// clients with one ScramServerSession per authentication attempt. Pure logic, no sockets.
import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import {
  type NonceGenerator,
  type ScramSecret,
  ScramError,
  SCRAM_MECHANISM,
  checkNonce,
  decodeBase64,
  defaultNonce,
  expectAttribute,
  hmacSha256,
  parseAttributes,
  sha256,
  xorBuffers,
} from './scram-common.js';

export { ScramError } from './scram-common.js';
export type { ScramSecret } from './scram-common.js';

export interface ScramServerOptions {
  /** Server nonce suffix generator (default: 18 random bytes, base64). */
  nonce?: NonceGenerator;
}

type State = 'initial' | 'first-done' | 'finished';

interface Gs2Split {
  gs2Header: string;
  bare: string;
}

const CLIENT_FIRST = 'client-first-message';
const CLIENT_FINAL = 'client-final-message';

/** Splits "gs2-cbind-flag,[authzid],bare" and validates the header (no channel binding, no authzid). */
function splitGs2Header(clientFirst: string): Gs2Split {
  const first = clientFirst.indexOf(',');
  const second = first < 0 ? -1 : clientFirst.indexOf(',', first + 1);
  if (second < 0) throw new ScramError(`malformed SCRAM ${CLIENT_FIRST}: missing GS2 header`);
  const flag = clientFirst.slice(0, first);
  const authzid = clientFirst.slice(first + 1, second);
  if (flag.startsWith('p=')) {
    throw new ScramError(
      `SCRAM channel binding requested ("${flag}") but only ${SCRAM_MECHANISM} without channel binding is offered`,
    );
  }
  if (flag !== 'n' && flag !== 'y') {
    throw new ScramError(`malformed SCRAM ${CLIENT_FIRST}: unexpected channel-binding flag "${flag}"`);
  }
  if (authzid !== '') {
    throw new ScramError(`SCRAM authorization identity ("${authzid}") is not supported`);
  }
  return { gs2Header: clientFirst.slice(0, second + 1), bare: clientFirst.slice(second + 1) };
}

/** Returns the client nonce from client-first-message-bare ("n=<user>,r=<nonce>[,ext...]"). */
function parseClientFirstBare(bare: string): string {
  const attrs = parseAttributes(bare, CLIENT_FIRST);
  if (attrs[0]?.key === 'm') {
    throw new ScramError(`SCRAM ${CLIENT_FIRST}: mandatory extension "m=" is not supported`);
  }
  expectAttribute(attrs, 0, 'n', CLIENT_FIRST); // PostgreSQL ignores the SCRAM username
  const nonce = expectAttribute(attrs, 1, 'r', CLIENT_FIRST);
  checkNonce(nonce, CLIENT_FIRST);
  return nonce;
}

interface ClientFinal {
  channelBinding: string;
  nonce: string;
  proof: Buffer;
  withoutProof: string;
}

/** Parses "c=<b64 gs2 header>,r=<nonce>[,ext...],p=<b64 proof>". */
function parseClientFinal(clientFinal: string): ClientFinal {
  const attrs = parseAttributes(clientFinal, CLIENT_FINAL);
  const channelBinding = expectAttribute(attrs, 0, 'c', CLIENT_FINAL);
  const nonce = expectAttribute(attrs, 1, 'r', CLIENT_FINAL);
  const proofB64 = expectAttribute(attrs, Math.max(attrs.length - 1, 2), 'p', CLIENT_FINAL);
  const proof = decodeBase64(proofB64, 'client proof', CLIENT_FINAL);
  if (proof.length !== 32)
    throw new ScramError(`malformed SCRAM ${CLIENT_FINAL}: client proof has wrong length`);
  const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(',p='));
  return { channelBinding, nonce, proof, withoutProof };
}

export class ScramServerSession {
  readonly mechanism = SCRAM_MECHANISM;
  private state: State = 'initial';
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  private readonly makeNonce: NonceGenerator;

  constructor(
    private readonly secret: ScramSecret,
    options: ScramServerOptions = {},
  ) {
    this.makeNonce = options.nonce ?? defaultNonce;
  }

  /** client-first-message (SASLInitialResponse data) → server-first-message. */
  handleClientFirst(clientFirst: string): string {
    this.expectState('initial', 'handleClientFirst');
    const { gs2Header, bare } = splitGs2Header(clientFirst);
    const clientNonce = parseClientFirstBare(bare);
    this.gs2Header = gs2Header;
    this.clientFirstBare = bare;
    this.nonce = clientNonce + this.makeNonce();
    const salt = this.secret.salt.toString('base64');
    this.serverFirst = `r=${this.nonce},s=${salt},i=${this.secret.iterations}`;
    this.state = 'first-done';
    return this.serverFirst;
  }

  /** client-final-message → { ok, serverFinal }; ok=false (serverFinal null) when the proof is wrong. */
  handleClientFinal(clientFinal: string): { ok: boolean; serverFinal: string | null } {
    this.expectState('first-done', 'handleClientFinal');
    this.state = 'finished';
    const msg = parseClientFinal(clientFinal);
    if (msg.channelBinding !== Buffer.from(this.gs2Header).toString('base64')) {
      throw new ScramError(`SCRAM ${CLIENT_FINAL}: channel-binding data "c=" does not match the GS2 header`);
    }
    if (msg.nonce !== this.nonce) throw new ScramError(`SCRAM ${CLIENT_FINAL}: nonce mismatch`);
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${msg.withoutProof}`;
    if (!this.proofMatches(msg.proof, authMessage)) return { ok: false, serverFinal: null };
    const serverSignature = hmacSha256(this.secret.serverKey, authMessage);
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}` };
  }

  /** ClientKey = proof XOR HMAC(StoredKey, AuthMessage); valid iff H(ClientKey) == StoredKey. */
  private proofMatches(proof: Buffer, authMessage: string): boolean {
    const clientSignature = hmacSha256(this.secret.storedKey, authMessage);
    const candidate = sha256(xorBuffers(proof, clientSignature));
    return (
      candidate.length === this.secret.storedKey.length && timingSafeEqual(candidate, this.secret.storedKey)
    );
  }

  private expectState(expected: State, method: string): void {
    if (this.state !== expected) {
      throw new ScramError(`SCRAM server session: ${method} called out of order (state ${this.state})`);
    }
  }
}

// Client authentication as a small state machine: given the configured method and the user's password,
// it returns the frames to send and judges each PasswordMessage / SASL response. No sockets here. The "cleartext"
// method (passthrough_auth) only asks for the password and hands it over: the caller has it judged.
import { randomBytes } from 'node:crypto';
import type { AuthType } from '../config/types.js';
import { PgError } from '../errors/pg-error.js';
import {
  AUTH_CLEARTEXT,
  AUTH_OK,
  authenticationMd5,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
} from '../protocol/messages.js';
import { verifyMd5Response } from '../auth/md5.js';
import { ScramServerSession } from '../auth/scram-server.js';
import { parseScramSecret, scramSecretFromPassword, type ScramSecret } from '../auth/scram-common.js';

/** PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: the largest password message it reads (its length word included). */
export const MAX_PASSWORD_MESSAGE_LENGTH = 65_535;
/** PostgreSQL's PG_MAX_SASL_MESSAGE_LENGTH, the limit of SCRAM's SASLInitialResponse / SASLResponse messages. */
export const MAX_SASL_MESSAGE_LENGTH = 1024;

/** How the client is asked for its password: the configured method, or in clear text for passthrough_auth. */
export type ClientAuthMethod = AuthType | 'cleartext';

export type AuthOutcome =
  | { kind: 'continue'; reply: Buffer }
  /** "cleartext": the password the client gave, for the caller to judge. */
  | { kind: 'password'; password: string }
  | { kind: 'ok'; reply: Buffer[] }
  | { kind: 'fail'; error: PgError; reason: string };

/** SCRAM secrets derived from plaintext passwords, cached so a login costs one PBKDF2 per password, not per client. */
const secretCache = new Map<string, ScramSecret>();

function scramSecretFor(password: string): ScramSecret {
  const stored = parseScramSecret(password);
  if (stored) return stored;
  let secret = secretCache.get(password);
  if (!secret) {
    secret = scramSecretFromPassword(password);
    if (secretCache.size > 10_000) secretCache.clear();
    secretCache.set(password, secret);
  }
  return secret;
}

export class ClientAuth {
  private readonly method: ClientAuthMethod;
  private readonly user: string;
  private readonly password: string | null;
  private md5Salt: Buffer | null = null;
  private scram: ScramServerSession | null = null;
  private step = 0;

  constructor(method: ClientAuthMethod, user: string, password: string | null) {
    this.method = method;
    this.user = user;
    this.password = password;
  }

  /** The largest 'p' frame accepted from the client (type byte included), as PostgreSQL caps it for this method. */
  get maxFrameBytes(): number {
    return 1 + (this.isSasl ? MAX_SASL_MESSAGE_LENGTH : MAX_PASSWORD_MESSAGE_LENGTH);
  }

  /** What PostgreSQL calls the client's reply in its "expected … response" error. */
  get responseName(): string {
    return this.isSasl ? 'SASL' : 'password';
  }

  private get isSasl(): boolean {
    return this.method === 'scram' || this.method === 'trust';
  }

  /** The first message: AuthenticationOk for trust, else the password/SASL request. */
  start(): AuthOutcome {
    if (this.method === 'trust') return { kind: 'ok', reply: [AUTH_OK] };
    if (this.method === 'cleartext') return { kind: 'continue', reply: AUTH_CLEARTEXT };
    if (this.method === 'md5') {
      this.md5Salt = randomBytes(4);
      return { kind: 'continue', reply: authenticationMd5(this.md5Salt) };
    }
    return { kind: 'continue', reply: authenticationSasl(['SCRAM-SHA-256']) };
  }

  /** Handle one 'p' frame (header included). */
  handle(frame: Buffer): AuthOutcome {
    try {
      if (this.method === 'cleartext') return { kind: 'password', password: passwordOf(frame) };
      return this.method === 'md5' ? this.handleMd5(frame) : this.handleScram(frame);
    } catch (err) {
      return {
        kind: 'fail',
        error: PgError.protocolViolation(`malformed authentication message: ${(err as Error).message}`),
        reason: 'malformed',
      };
    }
  }

  private fail(reason: string): AuthOutcome {
    return {
      kind: 'fail',
      error: PgError.authFailed(this.user, this.method === 'md5' ? 'md5' : 'SCRAM-SHA-256'),
      reason,
    };
  }

  private handleMd5(frame: Buffer): AuthOutcome {
    const response = passwordOf(frame);
    if (this.password === null || this.md5Salt === null) return this.fail('no password configured');
    return verifyMd5Response(this.user, this.password, this.md5Salt, response)
      ? { kind: 'ok', reply: [AUTH_OK] }
      : this.fail('wrong password');
  }

  private handleScram(frame: Buffer): AuthOutcome {
    if (this.step === 0) {
      // SASLInitialResponse: mechanism\0 int32 length, data
      const mechEnd = frame.indexOf(0, 5);
      if (mechEnd < 0) throw new Error('mechanism not NUL-terminated');
      const mechanism = frame.toString('utf8', 5, mechEnd);
      if (mechanism !== 'SCRAM-SHA-256') {
        return {
          kind: 'fail',
          error: PgError.protocolViolation(
            `SASL mechanism "${mechanism}" is not supported; use SCRAM-SHA-256`,
          ),
          reason: 'mechanism',
        };
      }
      const dataLen = frame.readInt32BE(mechEnd + 1);
      if (dataLen < 0 || mechEnd + 5 + dataLen > frame.length) throw new Error('bad SASL data length');
      const clientFirst = frame.toString('utf8', mechEnd + 5, mechEnd + 5 + dataLen);
      if (this.password === null) return this.fail('no password configured');
      this.scram = new ScramServerSession(scramSecretFor(this.password));
      const serverFirst = this.scram.handleClientFirst(clientFirst);
      this.step = 1;
      return { kind: 'continue', reply: authenticationSaslContinue(serverFirst) };
    }
    if (this.step === 1 && this.scram) {
      const clientFinal = frame.toString('utf8', 5);
      const { ok, serverFinal } = this.scram.handleClientFinal(clientFinal);
      this.step = 2;
      if (!ok || serverFinal === null) return this.fail('wrong password');
      return { kind: 'ok', reply: [authenticationSaslFinal(serverFinal), AUTH_OK] };
    }
    throw new Error('unexpected SASL message');
  }
}

/** The NUL-terminated text of a PasswordMessage. */
function passwordOf(frame: Buffer): string {
  const end = frame.indexOf(0, 5);
  if (end < 0) throw new Error('password not NUL-terminated');
  return frame.toString('utf8', 5, end);
}

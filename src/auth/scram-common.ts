// SCRAM-SHA-256 building blocks shared by the server and client sessions: the stored secret (PostgreSQL's
// "SCRAM-SHA-256$..." form), SASLprep, key derivation, attribute parsing, nonces and the ScramError type.
import { Buffer } from 'node:buffer';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** Raised for every protocol-level SCRAM failure (malformed message, nonce mismatch, bad server signature...). */
export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

/** What the server needs to verify a client, as stored by PostgreSQL in pg_authid.rolpassword. */
export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Produces the random part of a nonce; injectable so tests can replay fixed vectors (RFC 7677). */
export type NonceGenerator = () => string;

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const DEFAULT_ITERATIONS = 4096;
const SALT_LENGTH = 16; // same as PostgreSQL's SCRAM_DEFAULT_SALT_LEN
const NONCE_LENGTH = 18; // same as libpq / PostgreSQL's SCRAM_RAW_NONCE_LEN
const KEY_LENGTH = 32; // SHA-256 output

export const defaultNonce: NonceGenerator = () => randomBytes(NONCE_LENGTH).toString('base64');

// ---------------------------------------------------------------------------------------------------------
// SASLprep (RFC 4013), simplified.
//
// PostgreSQL (src/common/saslprep.c) runs SASLprep on the password and, when the result is invalid
// (prohibited characters, bidi violations, invalid UTF-8), silently falls back to the raw password bytes.
// We implement:
//   - pure ASCII input is used as is (PostgreSQL's fast path does the same, control characters included);
//   - otherwise: non-ASCII spaces (RFC 3454 C.1.2) -> U+0020, "commonly mapped to nothing" (B.1) removed,
//     then NFKC normalization;
//   - if the normalized result is empty or contains a prohibited character from a simplified subset of the
//     RFC 4013 tables (control characters, private use, surrogates, non-characters), fall back to the raw
//     password, like PostgreSQL.
// Not implemented: the full prohibition tables, the bidi check and the unassigned-code-point check. This
// matches node-postgres's client-side SASLprep for every password that PostgreSQL accepts as valid.
// ---------------------------------------------------------------------------------------------------------
// eslint-disable-next-line no-control-regex
const PURE_ASCII = /^[\x00-\x7f]*$/;
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g;
// eslint-disable-next-line no-misleading-character-class
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g;
const PROHIBITED =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u06dd\u070f\u180e\u200e\u200f\u2028-\u202e\u2060-\u206f\ue000-\uf8ff\ufdd0-\ufdef\ufff9-\ufffd\ud800-\udfff]/u;

export function saslPrep(password: string): string {
  if (PURE_ASCII.test(password)) return password;
  const prepared = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  if (prepared === '' || PROHIBITED.test(prepared)) return password;
  return prepared;
}

// ----- crypto primitives ----------------------------------------------------------------------------------

export function hmacSha256(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

export function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, KEY_LENGTH, 'sha256');
}

/** ClientKey, StoredKey and ServerKey derived from a salted password (RFC 5802 §3). */
export function deriveKeys(salted: Buffer): { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const clientKey = hmacSha256(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmacSha256(salted, 'Server Key') };
}

// ----- secrets --------------------------------------------------------------------------------------------

export function scramSecretFromPassword(
  password: string,
  salt: Buffer = randomBytes(SALT_LENGTH),
  iterations: number = DEFAULT_ITERATIONS,
): ScramSecret {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  const { storedKey, serverKey } = deriveKeys(saltedPassword(password, salt, iterations));
  return { iterations, salt: Buffer.from(salt), storedKey, serverKey };
}

/** PostgreSQL's stored form: "SCRAM-SHA-256$<iter>:<b64salt>$<b64StoredKey>:<b64ServerKey>". */
export function formatScramSecret(secret: ScramSecret): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  return `${SCRAM_MECHANISM}$${secret.iterations}:${b64(secret.salt)}$${b64(secret.storedKey)}:${b64(secret.serverKey)}`;
}

const SECRET_FORM = /^SCRAM-SHA-256\$([1-9][0-9]*):([^$:]+)\$([^$:]+):([^$:]+)$/;

/** Parses PostgreSQL's stored SCRAM secret; null when the string is not in that form. */
export function parseScramSecret(s: string): ScramSecret | null {
  const m = SECRET_FORM.exec(s);
  if (m === null) return null;
  const [, iterText, saltB64, storedB64, serverB64] = m;
  const iterations = Number(iterText);
  if (!Number.isSafeInteger(iterations)) return null;
  if (![saltB64, storedB64, serverB64].every(isBase64)) return null;
  const salt = Buffer.from(saltB64, 'base64');
  const storedKey = Buffer.from(storedB64, 'base64');
  const serverKey = Buffer.from(serverB64, 'base64');
  if (salt.length === 0 || storedKey.length !== KEY_LENGTH || serverKey.length !== KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

// ----- message parsing ------------------------------------------------------------------------------------

export interface ScramAttribute {
  key: string;
  value: string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isBase64(s: string): boolean {
  return BASE64.test(s);
}

/** RFC 5802 "printable": %x21-2B / %x2D-7E (printable ASCII except ','). Empty is not a valid nonce. */
export function isPrintableNonce(s: string): boolean {
  return /^[\x21-\x2b\x2d-\x7e]+$/.test(s);
}

/** Splits "k=v,k=v" into attributes (value = everything after the first '='). */
export function parseAttributes(message: string, context: string): ScramAttribute[] {
  if (message === '') throw new ScramError(`malformed SCRAM ${context}: empty message`);
  return message.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) {
      throw new ScramError(`malformed SCRAM ${context}: expected "key=value" attribute, got "${part}"`);
    }
    return { key: part[0], value: part.slice(2) };
  });
}

/** Returns the value of the attribute expected at `index`, or throws a ScramError naming it. */
export function expectAttribute(
  attrs: readonly ScramAttribute[],
  index: number,
  key: string,
  context: string,
): string {
  const attr = attrs[index];
  if (attr === undefined || attr.key !== key) {
    const got = attr === undefined ? 'end of message' : `"${attr.key}="`;
    throw new ScramError(`malformed SCRAM ${context}: missing attribute "${key}=" (got ${got})`);
  }
  return attr.value;
}

export function decodeBase64(value: string, what: string, context: string): Buffer {
  if (value === '' || !isBase64(value)) {
    throw new ScramError(`malformed SCRAM ${context}: ${what} is not valid base64`);
  }
  return Buffer.from(value, 'base64');
}

export function checkNonce(nonce: string, context: string): void {
  if (!isPrintableNonce(nonce)) {
    throw new ScramError(`malformed SCRAM ${context}: nonce is empty or has non-printable characters`);
  }
}

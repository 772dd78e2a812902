// PostgreSQL md5 password authentication (AuthenticationMD5Password): the hash a client sends, the stored
// "md5..." form, and constant-time verification of a client's PasswordMessage. Pure logic, no sockets.
import { Buffer } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';

const STORED_MD5 = /^md5[0-9a-f]{32}$/;

// The texts are hashed as they are (update(text, 'utf8')): no Buffer copies of them per login.

/** "md5" + md5(password + user): what PostgreSQL stores in pg_authid.rolpassword. */
export function md5StoredHash(user: string, password: string): string {
  return 'md5' + createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
}

/** "md5" + md5(storedHex + salt): the response to a challenge, computed from the stored form. */
function responseFromStored(stored: string, salt: Buffer): string {
  return 'md5' + createHash('md5').update(stored.slice(3), 'utf8').update(salt).digest('hex');
}

/** "md5" + md5(md5(password + user) + salt) hex: what the client sends in its PasswordMessage. */
export function md5PasswordHash(user: string, password: string, salt: Buffer): string {
  return responseFromStored(md5StoredHash(user, password), salt);
}

/** True if `response` answers the challenge `salt`; accepts a plaintext password or a stored "md5..." hash. */
export function verifyMd5Response(
  user: string,
  passwordOrStoredHash: string,
  salt: Buffer,
  response: string,
): boolean {
  const stored = STORED_MD5.test(passwordOrStoredHash)
    ? passwordOrStoredHash
    : md5StoredHash(user, passwordOrStoredHash);
  const expected = Buffer.from(responseFromStored(stored, salt), 'utf8');
  const actual = Buffer.from(response, 'utf8');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

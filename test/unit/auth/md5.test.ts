// Unit tests for md5 password authentication: client hash, stored form and verification.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5PasswordHash, md5StoredHash, verifyMd5Response } from '../../../src/auth/md5.js';

const salt = Buffer.from([1, 2, 3, 4]);
const md5 = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');

describe('md5 password hashing', () => {
  it('matches the hard-coded stored hash for postgres/postgres', () => {
    expect(md5StoredHash('postgres', 'postgres')).toBe('md53175bce1d3201d16594cebf9d7eb3f9d');
  });

  it('computes md5(md5(password + user) + salt), checked independently', () => {
    const inner = md5('postgrespostgres');
    const expected = 'md5' + md5(Buffer.concat([Buffer.from(inner), salt]));
    expect(md5PasswordHash('postgres', 'postgres', salt)).toBe(expected);
    expect(expected).toMatch(/^md5[0-9a-f]{32}$/);
  });

  it('depends on the salt and the user', () => {
    const base = md5PasswordHash('postgres', 'postgres', salt);
    expect(md5PasswordHash('postgres', 'postgres', Buffer.from([1, 2, 3, 5]))).not.toBe(base);
    expect(md5PasswordHash('other', 'postgres', salt)).not.toBe(base);
  });
});

describe('verifyMd5Response', () => {
  const response = md5PasswordHash('alice', 'wonderland', salt);

  it('accepts the right password given as plaintext', () => {
    expect(verifyMd5Response('alice', 'wonderland', salt, response)).toBe(true);
  });

  it('accepts the right password given as the stored md5 hash', () => {
    expect(verifyMd5Response('alice', md5StoredHash('alice', 'wonderland'), salt, response)).toBe(true);
  });

  it('rejects a wrong password, a wrong user, a wrong salt and malformed responses', () => {
    expect(verifyMd5Response('alice', 'wonderlant', salt, response)).toBe(false);
    expect(verifyMd5Response('alice', md5StoredHash('alice', 'wonderlant'), salt, response)).toBe(false);
    expect(verifyMd5Response('bob', 'wonderland', salt, response)).toBe(false);
    expect(verifyMd5Response('alice', 'wonderland', Buffer.from([9, 9, 9, 9]), response)).toBe(false);
    expect(verifyMd5Response('alice', 'wonderland', salt, '')).toBe(false);
    expect(verifyMd5Response('alice', 'wonderland', salt, response + 'x')).toBe(false);
    expect(verifyMd5Response('alice', 'wonderland', salt, response.toUpperCase())).toBe(false);
  });
});

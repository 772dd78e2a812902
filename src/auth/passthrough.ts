// passthrough_auth's rules (PgDog's modes): what a cleartext password given by a client without a users.toml password
// leads to — accepted as remembered, checked by the servers, or refused. Pure; the server check is the caller's.
import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import type { PassthroughAuth } from '../config/types.js';

export type PassthroughVerdict =
  /** The remembered password: logged in. */
  | 'accept'
  /** Nothing remembered yet, or a changed password the mode lets replace it: the servers must accept it first. */
  | 'check'
  /** A password other than the remembered one, and the mode keeps the first. */
  | 'refuse-change'
  /** Mode "enabled" / "enabled_allow_change" over a connection without TLS: the password must not travel in clear. */
  | 'needs-tls';

/** The mode accepts passwords over connections without TLS. */
export function allowsPlaintext(mode: PassthroughAuth): boolean {
  return mode === 'enabled_plain' || mode === 'enabled_plain_allow_change';
}

function allowsChange(mode: PassthroughAuth): boolean {
  return mode === 'enabled_allow_change' || mode === 'enabled_plain_allow_change';
}

/** Equal passwords, compared in time independent of where they differ. */
function samePassword(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function passthroughVerdict(
  mode: PassthroughAuth,
  isTls: boolean,
  remembered: string | null,
  given: string,
): PassthroughVerdict {
  if (!isTls && !allowsPlaintext(mode)) return 'needs-tls';
  if (remembered === null) return 'check';
  if (samePassword(remembered, given)) return 'accept';
  return allowsChange(mode) ? 'check' : 'refuse-change';
}

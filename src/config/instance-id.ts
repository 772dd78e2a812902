// The default instance_id (when pgdog.toml sets none), and the default of earlier versions that recovery still
// settles. Pure: the host name and port are passed in. The id goes into every GID (`sg_<id>_<txid>_<shard>`, at most
// 200 bytes in PostgreSQL) unquoted, so it holds only [A-Za-z0-9_] and stays within the configured ids' 40 characters.
import { createHash } from 'node:crypto';

/** Longest instance_id, configured or derived (GIDs then stay far below PostgreSQL's 200 bytes). */
export const INSTANCE_ID_MAX_LENGTH = 40;
/** What a configured instance_id may hold. */
export const INSTANCE_ID_PATTERN = new RegExp(`^[A-Za-z0-9_]{1,${INSTANCE_ID_MAX_LENGTH}}$`);

/** Readable part of the default id: the host name's first characters (the hash tells the rest apart). */
const PREFIX_MAX_LENGTH = 20;
/** 64 bits of SHA-256 in base 36: 13 characters, zero-padded so every default id of one host has the same shape. */
const HASH_LENGTH = 13;
/** Earlier versions cut the host name to this many characters. */
const FORMER_HOST_LENGTH = 32;

function sanitize(hostName: string): string {
  return hostName.replace(/[^A-Za-z0-9]+/g, '_');
}

/** 64 bits of SHA-256 of the whole host name as it is (before any character is replaced), base 36. */
function hostHash(hostName: string): string {
  const digest = createHash('sha256').update(hostName, 'utf8').digest();
  return digest.readBigUInt64BE(0).toString(36).padStart(HASH_LENGTH, '0');
}

/**
 * `<host name, first 20 characters>_<hash of the whole host name>_<port>`: two different host names give different
 * ids (up to a 64-bit hash collision) however long they are or whatever characters they differ in, and the same
 * host and port give the same id at every start. At most 40 characters, [A-Za-z0-9_] only.
 */
export function defaultInstanceId(hostName: string, port: number): string {
  const prefix =
    sanitize(hostName).replace(/^_+/, '').slice(0, PREFIX_MAX_LENGTH).replace(/_+$/, '') || 'host';
  return `${prefix}_${hostHash(hostName)}_${port}`;
}

export interface FormerInstanceId {
  /** The id exactly as earlier versions made it: the host name cut to 32 characters, `_`, the port. */
  readonly id: string;
  /**
   * The host name was longer than 32 characters, so hosts sharing its first 32 (pods of one Deployment) made the
   * same id: prepared transactions under it may be another host's.
   */
  readonly isAmbiguous: boolean;
}

/** The default instance_id of shardgate before the hash was added (its prepared transactions may still exist). */
export function formerDefaultInstanceId(hostName: string, port: number): FormerInstanceId {
  const sanitized = sanitize(hostName);
  const host = sanitized.slice(0, FORMER_HOST_LENGTH) || 'host';
  return { id: `${host}_${port}`, isAmbiguous: sanitized.length > FORMER_HOST_LENGTH };
}

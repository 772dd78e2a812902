// Transaction ids and the GIDs of PREPARE TRANSACTION: `sg_<instance>_<txid>_<shard>_d<decision shard>` (the
// stateless protocol: the decision row of txid lives on the decision shard), and the legacy form
// `sg_<instance>_<txid>_<shard>` of the local decision log, still parsed so upgrades orphan nothing. The txid (boot
// time, random bits, counter) is unique across proxies and restarts; the instance id is there for diagnostics.
import { randomBytes } from 'node:crypto';

const PREFIX = 'sg';
/** txid: base-36 boot time, 'x', base-36 counter — no '_' inside, so a GID splits unambiguously from the right. */
const TXID_PATTERN = /^[0-9a-z]+x[0-9a-z]+$/;

/** Random base-36 characters after the boot time: 8 of them are 41 bits. */
const RANDOM_CHARS = 8;

/**
 * Makes the txids of one process: `<boot ms><random>x<counter>`, base 36. Unique across restarts (boot time) and
 * across proxies started in the same millisecond (41 random bits); a collision would only make the second commit
 * fail on the decision row's key, never split a commit.
 */
export class TxidSource {
  private readonly boot: string;
  private next = 1;

  constructor(now: number = Date.now(), random: Buffer = randomBytes(8)) {
    const bits = random.readBigUInt64BE(0) % 36n ** BigInt(RANDOM_CHARS);
    this.boot = now.toString(36) + bits.toString(36).padStart(RANDOM_CHARS, '0');
  }

  nextTxid(): string {
    return `${this.boot}x${(this.next++).toString(36)}`;
  }
}

/** The legacy GID of `txid`'s branch on `shard`. Only [A-Za-z0-9_] (instance ids are checked by the config loader). */
export function makeGid(instanceId: string, txid: string, shard: number): string {
  return `${PREFIX}_${instanceId}_${txid}_${shard}`;
}

/** The GID of `txid`'s branch on `shard` whose decision row lives on `decisionShard` (the stateless protocol). */
export function makeDecidedGid(
  instanceId: string,
  txid: string,
  shard: number,
  decisionShard: number,
): string {
  return `${makeGid(instanceId, txid, shard)}_d${decisionShard}`;
}

/** LIKE pattern of every GID of the stateless protocol, whichever proxy made it ('_' escaped). */
export const DECIDED_GID_LIKE = `${PREFIX}\\_%\\_d%`;

/** The prefix every GID of `instanceId` starts with (for LIKE; '_' escaped). */
export function gidLikePattern(instanceId: string): string {
  return `${PREFIX}_${instanceId}_`.replace(/_/g, '\\_') + '%';
}

export interface ParsedGid {
  readonly instanceId: string;
  readonly txid: string;
  readonly shard: number;
  /** The stateless form: the shard holding the decision row. Absent: a legacy GID (local decision log). */
  readonly decisionShard?: number;
}

const SHARD_TEXT = /^(0|[1-9][0-9]{0,4})$/;

/** The parts of a GID of ours (either form); null for anyone else's (other software, malformed). */
export function parseGid(gid: string): ParsedGid | null {
  const decided = /_d(0|[1-9][0-9]{0,4})$/.exec(gid);
  if (decided !== null) {
    const legacy = parseLegacyGid(gid.slice(0, decided.index));
    return legacy === null ? null : { ...legacy, decisionShard: Number(decided[1]) };
  }
  return parseLegacyGid(gid);
}

function parseLegacyGid(gid: string): ParsedGid | null {
  if (!gid.startsWith(`${PREFIX}_`)) return null;
  const lastSep = gid.lastIndexOf('_');
  const txidSep = gid.lastIndexOf('_', lastSep - 1);
  if (txidSep <= PREFIX.length) return null;
  const instanceId = gid.slice(PREFIX.length + 1, txidSep);
  const txid = gid.slice(txidSep + 1, lastSep);
  const shardText = gid.slice(lastSep + 1);
  if (instanceId === '' || !TXID_PATTERN.test(txid) || !SHARD_TEXT.test(shardText)) return null;
  return { instanceId, txid, shard: Number(shardText) };
}

/** Whether a client-chosen GID falls in the proxy's own namespace (`sg_…`), which clients may not use. */
export function isProxyGid(gid: string): boolean {
  return gid.startsWith(`${PREFIX}_`);
}

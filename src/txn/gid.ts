// Transaction ids and the GIDs of PREPARE TRANSACTION: `sg_<instance>_<txid>_<shard>`. The instance id tells this
// proxy's prepared transactions from anyone else's; the txid (boot time + counter) never repeats across restarts.

const PREFIX = 'sg';
/** txid: base-36 boot time, 'x', base-36 counter — no '_' inside, so a GID splits unambiguously from the right. */
const TXID_PATTERN = /^[0-9a-z]+x[0-9a-z]+$/;

/** Makes the txids of one process: unique across restarts as long as the clock does not go back by the uptime. */
export class TxidSource {
  private readonly boot: string;
  private next = 1;

  constructor(now: number = Date.now()) {
    this.boot = now.toString(36);
  }

  nextTxid(): string {
    return `${this.boot}x${(this.next++).toString(36)}`;
  }
}

/** The GID of `txid`'s branch on `shard`. Only [A-Za-z0-9_] (instance ids are checked by the config loader). */
export function makeGid(instanceId: string, txid: string, shard: number): string {
  return `${PREFIX}_${instanceId}_${txid}_${shard}`;
}

/** The prefix every GID of `instanceId` starts with (for LIKE; '_' escaped). */
export function gidLikePattern(instanceId: string): string {
  return `${PREFIX}_${instanceId}_`.replace(/_/g, '\\_') + '%';
}

export interface ParsedGid {
  readonly instanceId: string;
  readonly txid: string;
  readonly shard: number;
}

/** The parts of a GID of ours; null for anyone else's (other software, malformed). */
export function parseGid(gid: string): ParsedGid | null {
  if (!gid.startsWith(`${PREFIX}_`)) return null;
  const lastSep = gid.lastIndexOf('_');
  const txidSep = gid.lastIndexOf('_', lastSep - 1);
  if (txidSep <= PREFIX.length) return null;
  const instanceId = gid.slice(PREFIX.length + 1, txidSep);
  const txid = gid.slice(txidSep + 1, lastSep);
  const shardText = gid.slice(lastSep + 1);
  if (instanceId === '' || !TXID_PATTERN.test(txid) || !/^(0|[1-9][0-9]{0,4})$/.test(shardText)) return null;
  return { instanceId, txid, shard: Number(shardText) };
}

/** Whether a client-chosen GID falls in the proxy's own namespace (`sg_…`), which clients may not use. */
export function isProxyGid(gid: string): boolean {
  return gid.startsWith(`${PREFIX}_`);
}

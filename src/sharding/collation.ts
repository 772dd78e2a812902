// Which databases sort text by bytes. Merging ORDER BY / min / max of text across shards compares bytes (the "C"
// collation); under another collation (en_US.UTF-8, an ICU locale) that would give a wrong order, so the merger must
// know, per database, whether it may. Asked of a shard once at start-up (retried while none answers).
import type { Logger } from 'pino';
import { queryShard, type ShardAccess } from '../txn/shard-access.js';

/** libc collations that sort by bytes / code points (UTF-8 byte order is code point order). */
const BYTE_ORDER = /^(c|posix|c\.utf-?8)$/i;

/** True when `datcollate` (with `provider`: 'c' libc, 'i' ICU, 'b' builtin) sorts text by bytes. */
export function isByteOrderCollation(datcollate: string, provider: string | null): boolean {
  if (provider === 'i') return false;
  if (provider === 'b') return /^(c|c\.utf-?8|ucs_basic)$/i.test(datcollate) || datcollate === '';
  return BYTE_ORDER.test(datcollate);
}

/** The database's collation name when it does not sort text by bytes, null when it does; undefined if no shard answered. */
export async function probeTextCollation(
  shards: ShardAccess,
  database: string,
  logger: Logger,
): Promise<string | null | undefined> {
  const user = shards.users(database)[0];
  if (user === undefined) return undefined;
  for (let shard = 0; shard < shards.shardCount(database); shard++) {
    // to_jsonb(d): datlocprovider exists from PostgreSQL 15 on; older servers are libc only.
    const outcome = await queryShard(
      shards,
      database,
      user,
      shard,
      "SELECT datcollate, to_jsonb(d)->>'datlocprovider', coalesce(to_jsonb(d)->>'daticulocale', to_jsonb(d)->>'datlocale') FROM pg_catalog.pg_database d WHERE datname = current_database()",
    );
    if (outcome.kind === 'lost')
      logger.debug({ database, shard, err: outcome.reason }, 'collation probe: shard unreachable');
    if (outcome.kind !== 'ok' || outcome.rows.length === 0) continue;
    const [collate, provider, locale] = outcome.rows[0];
    if (isByteOrderCollation(collate ?? '', provider)) return null;
    // ICU (and builtin) databases are named by their locale: their datcollate (often "C") is not what sorts text.
    if (provider !== 'c' && locale !== null && locale !== '')
      return provider === 'i' ? `${locale} (ICU)` : locale;
    return collate ?? 'unknown';
  }
  return undefined;
}

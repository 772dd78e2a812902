// Asks a sharded database's shards, once at start-up (retried while none answers), how text sorts there
// (sharding/collation.ts decides whether that is byte order), on a connection of its own outside the pools.
import type { Logger } from 'pino';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';
import { isByteOrderCollation } from '../sharding/collation.js';

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

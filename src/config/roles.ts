// Which [[databases]] entry is a shard's primary and which are its replicas: role = "primary" wins; a shard with
// none takes its first role = "auto" entry as the primary to start with and its other "auto" entries as replicas
// (a shard of only "auto" entries then follows what its servers report: backend/replica-set.ts `follow`). Every module that needs a shard's primary asks here (pools, 2PC access).
import type { DatabaseConfig } from './types.js';

export interface ShardMembers {
  primary: DatabaseConfig;
  replicas: DatabaseConfig[];
}

/** Per shard of `database` (indexed by shard number), its primary and replicas, in file order; [] if unknown. */
export function shardMembers(databases: readonly DatabaseConfig[], database: string): ShardMembers[] {
  const byShard: DatabaseConfig[][] = [];
  for (const d of databases) if (d.name === database) (byShard[d.shard] ??= []).push(d);
  const out: ShardMembers[] = [];
  byShard.forEach((entries, shard) => {
    const primary = entries.find((d) => d.role === 'primary') ?? entries.find((d) => d.role === 'auto');
    if (primary === undefined) return; // config/databases.ts refuses a shard without one
    out[shard] = { primary, replicas: entries.filter((d) => d !== primary && d.role !== 'primary') };
  });
  return out;
}

/** The primary entry of `shard` of `database`, if configured. */
export function primaryOf(
  databases: readonly DatabaseConfig[],
  database: string,
  shard: number,
): DatabaseConfig | undefined {
  return shardMembers(databases, database)[shard]?.primary;
}

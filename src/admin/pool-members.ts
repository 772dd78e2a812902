// Every pool the admin console shows or acts on, with where it belongs: (user, database), shard, its replica set and
// its member (role, ban). One walk shared by SHOW POOLS, SHOW SERVERS, SHOW BANS, BAN, UNBAN and HEALTHCHECK.
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Member, ReplicaSet } from '../backend/replica-set.js';
import type { AdminContext } from './context.js';

export interface PoolMember {
  pools: DatabasePools;
  shard: number;
  set: ReplicaSet;
  member: Member;
}

/** Per (user, database), per shard: the primary's pool, then its replicas' pools. */
export function poolMembers(ctx: AdminContext): PoolMember[] {
  const out: PoolMember[] = [];
  for (const pools of ctx.pools.all()) {
    pools.sets.forEach((set, shard) => {
      for (const member of set.members()) out.push({ pools, shard, set, member });
    });
  }
  return out;
}

// Every pool the admin console shows or acts on, with where it belongs: (user, database), shard, its replica set and
// its member (role, ban). One walk shared by SHOW POOLS, SHOW SERVERS, SHOW BANS, BAN, UNBAN, HEALTHCHECK and SHOW
// REPLICATION, and the identity columns those rows start with (PgDog's: id, database, user, addr, port, shard, role).
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Member, ReplicaSet } from '../backend/replica-set.js';
import type { AdminContext } from './context.js';
import { cols } from './result-set.js';

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

/** The columns that name a pool in SHOW BANS, HEALTHCHECK and SHOW REPLICATION, in PgDog's order. */
export const POOL_IDENTITY_COLUMNS = cols({
  id: 'int8',
  database: 'text',
  user: 'text',
  addr: 'text',
  port: 'int8',
  shard: 'int8',
  role: 'text',
});

/** The values of POOL_IDENTITY_COLUMNS for one pool. */
export function poolIdentity({ pools, shard, member }: PoolMember): (string | number)[] {
  const { address } = member.pool.opts;
  return [member.pool.id, pools.database, pools.user.name, address.host, address.port, shard, member.role];
}

// Counters of one (database, shard) and of one database, shared by every pool and server connection of it: written
// on the hot path with plain increments (each pool and server holds its ShardStats; nothing is looked up per query),
// read by SHOW STATS and the OpenMetrics endpoint. Byte counts come from the sockets themselves, read at report time.
import { DurationHistogram } from './duration-histogram.js';
import { ErrorClassCounts } from './error-classes.js';

/** Something holding live server connections whose socket byte counts belong to a shard (a pool). */
export interface LiveBytes {
  /** Bytes sent to / received from servers on connections still open. */
  liveBytes(): { sent: number; received: number };
}

/** Requests and transactions answered by one role's servers (read/write split). */
export interface RoleTraffic {
  queries: number;
  transactions: number;
}

/** Replica health of a shard: checks run and failed, bans made (by checks, failed connects or BAN). */
export interface HealthCounts {
  checks: number;
  checkFailures: number;
  bans: number;
}

export class ShardStats {
  readonly database: string;
  readonly shard: number;
  /** Requests answered: one per ReadyForQuery a client (or the proxy's own statement) received. */
  queries = 0;
  /** Transactions ended (ReadyForQuery back to idle), autocommit statements included. */
  transactions = 0;
  /** From the first message sent to the ReadyForQuery ending it. */
  readonly queryTime = new DurationHistogram();
  /** From the first message of a transaction to the ReadyForQuery that ends it. */
  readonly transactionTime = new DurationHistogram();
  /** Time a checkout waited for a server connection (0 when one was idle). */
  readonly waitTime = new DurationHistogram();
  /** ErrorResponses from this shard's servers. */
  readonly errors = new ErrorClassCounts();
  /** `queries` and `transactions` split by the role of the server that answered. */
  readonly byRole: { readonly primary: RoleTraffic; readonly replica: RoleTraffic } = {
    primary: { queries: 0, transactions: 0 },
    replica: { queries: 0, transactions: 0 },
  };
  readonly health: HealthCounts = { checks: 0, checkFailures: 0, bans: 0 };
  /** Server connections opened. */
  connects = 0;
  /** Bytes of server connections already closed; open ones are counted through `pools`. */
  closedBytesSent = 0;
  closedBytesReceived = 0;
  readonly pools = new Set<LiveBytes>();

  constructor(database: string, shard: number) {
    this.database = database;
    this.shard = shard;
  }

  /** Bytes sent to and received from this shard's servers since startup. */
  bytes(): { sent: number; received: number } {
    let sent = this.closedBytesSent;
    let received = this.closedBytesReceived;
    for (const pool of this.pools) {
      const live = pool.liveBytes();
      sent += live.sent;
      received += live.received;
    }
    return { sent, received };
  }
}

/** Counts for servers outside any pool (the transaction manager's own connections): recorded, never reported. */
export const UNTRACKED_SHARD = new ShardStats('', -1);

export class DatabaseStats {
  readonly name: string;
  /** Indexed by shard number. */
  readonly shards: ShardStats[] = [];
  /** Errors shardgate raised itself toward this database's clients (pool timeouts, refused statements, ...). */
  readonly proxyErrors = new ErrorClassCounts();
  /** Bytes of client connections already closed; open ones are read from their sockets. */
  closedClientBytesReceived = 0;
  closedClientBytesSent = 0;

  constructor(name: string) {
    this.name = name;
  }

  shard(shard: number): ShardStats {
    let stats = this.shards[shard];
    if (stats === undefined) {
      stats = new ShardStats(this.name, shard);
      this.shards[shard] = stats;
    }
    return stats;
  }
}

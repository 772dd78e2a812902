// Connections the transaction manager keeps for the first phase 2 of every commit answered at its decision
// (two_phase_commit_reply = "at_decision"; retries and recovery use a fresh connection per statement) and for the
// batched deletes of decision rows (decision-rows.ts): a few idle ones per database,
// user and shard, reused for a short while, so a busy proxy does not open a server connection per branch. Never from a
// client pool (a full pool must not delay a committed transaction). A connection lost or idle too long is closed; the
// manager's retry opens another.
import { runQuery, type QueryOutcome } from '../backend/server-query.js';
import type { ServerConnection } from '../backend/server-connection.js';
import type { ShardAccess } from '../backend/shard-access.js';

/** Idle connections kept per (database, user, shard). */
const MAX_IDLE = 32;
/** An idle connection older than this is closed rather than reused (a host gone quiet must not hold a retry up). */
const MAX_IDLE_MS = 10_000;

interface Idle {
  readonly server: ServerConnection;
  readonly since: number;
}

export class PhaseTwoConnections {
  private readonly idle = new Map<string, Idle[]>();
  private isClosed = false;

  constructor(private readonly shards: ShardAccess) {}

  /** Run `sql` on a kept connection to `shard` (a new one if none is idle); 'lost' when it cannot be reached. */
  async query(database: string, user: string, shard: number, sql: string): Promise<QueryOutcome> {
    const key = `${database}\u0000${user}\u0000${shard}`;
    let server = this.takeIdle(key);
    if (server === null) {
      try {
        server = await this.shards.connect(database, user, shard);
      } catch (err) {
        return { kind: 'lost', reason: `cannot connect: ${(err as Error).message}` };
      }
    }
    const outcome = await runQuery(server, sql);
    if (outcome.kind === 'lost') {
      server.terminate('lost during phase 2');
      return { kind: 'lost', reason: `connection lost: ${outcome.reason}` };
    }
    const list = this.idle.get(key) ?? [];
    if (this.isClosed || list.length >= MAX_IDLE || server.isClosed)
      server.terminate('phase 2 statement done');
    else {
      list.push({ server, since: Date.now() });
      this.idle.set(key, list);
    }
    return outcome;
  }

  private takeIdle(key: string): ServerConnection | null {
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const { server, since } = list.pop() as Idle;
      if (!server.isClosed && Date.now() - since < MAX_IDLE_MS) return server;
      server.terminate('idle phase-2 connection too old');
    }
    return null;
  }

  /** Close every kept connection; later statements close theirs when done. */
  close(): void {
    this.isClosed = true;
    for (const list of this.idle.values()) for (const { server } of list) server.terminate('shutting down');
    this.idle.clear();
  }
}

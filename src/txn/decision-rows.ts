// Deleting decision rows of finished transactions: a row may go once every participant it lists confirmed its branch
// is finished (the session's or the background phase 2 saw every COMMIT PREPARED succeed). Deletes are queued per
// decision shard and sent in batches, off the commit path, on the transaction manager's kept connections
// (phase-two-connections.ts: no server connection opened per batch). A row whose delete fails or
// is lost with the process stays behind harmlessly: recovery's clean-up (decision-recovery.ts) deletes it later.
import type { Logger } from 'pino';
import { outcomeFailure, type QueryOutcome } from '../backend/server-query.js';
import { deleteDecisionsSql } from './decision-table.js';

/** Runs one statement on a connection to `shard` (PhaseTwoConnections.query). */
export type ShardQuery = (
  database: string,
  user: string,
  shard: number,
  sql: string,
) => Promise<QueryOutcome>;

/** How long finished txids gather before one DELETE removes their rows, ms. */
const FLUSH_DELAY_MS = 200;
const MAX_BATCH = 500;

export class DecisionRowCleaner {
  private readonly queued = new Map<
    string,
    { database: string; user: string; shard: number; txids: string[] }
  >();
  private timer: NodeJS.Timeout | null = null;
  private isClosed = false;

  constructor(
    private readonly query: ShardQuery,
    private readonly schema: string,
    private readonly logger: Logger,
  ) {}

  /** `txid`'s row on `shard` of `database` may be deleted (every participant finished). */
  forget(database: string, user: string, shard: number, txid: string): void {
    if (this.isClosed) return;
    const key = `${database}\u0000${user}\u0000${shard}`;
    let entry = this.queued.get(key);
    if (entry === undefined) {
      entry = { database, user, shard, txids: [] };
      this.queued.set(key, entry);
    }
    entry.txids.push(txid);
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_DELAY_MS).unref();
  }

  /** Send every queued delete now. */
  async flush(): Promise<void> {
    this.timer = null;
    const batches = [...this.queued.values()];
    this.queued.clear();
    await Promise.all(
      batches.flatMap((b) => {
        const out: Promise<void>[] = [];
        for (let i = 0; i < b.txids.length; i += MAX_BATCH) {
          const txids = b.txids.slice(i, i + MAX_BATCH);
          out.push(
            this.query(b.database, b.user, b.shard, deleteDecisionsSql(this.schema, txids)).then((o) => {
              if (o.kind === 'ok') return;
              this.logger.warn(
                { database: b.database, shard: b.shard, rows: txids.length, err: outcomeFailure(o) },
                'could not delete decision rows of finished transactions; recovery will',
              );
            }),
          );
        }
        return out;
      }),
    );
  }

  close(): void {
    this.isClosed = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

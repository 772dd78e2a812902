// The memory a merge holds for aggregates that need every value in one place — the distinct values of
// count/sum/avg(DISTINCT x) and the elements of string_agg/array_agg(… ORDER BY …) — counted for the whole statement
// (every group together) against one bound: past it the statement fails with 54000 rather than growing without end.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

/** What one statement's merge may hold for such aggregates, all groups together. */
export const AGGREGATE_VALUES_MAX_BYTES = 64 * 1024 * 1024;

/** Estimated bytes of bookkeeping per value held (Map/Set entry, key string, Buffer object). */
export const HELD_VALUE_OVERHEAD_BYTES = 64;

export class HeldBytes {
  private bytes = 0;

  constructor(readonly maxBytes = AGGREGATE_VALUES_MAX_BYTES) {}

  get used(): number {
    return this.bytes;
  }

  /** Count `bytes` more for `aggregate` (its name, for the error); 54000 once the total passes the bound. */
  charge(bytes: number, aggregate: string): void {
    this.bytes += bytes;
    if (this.bytes <= this.maxBytes) return;
    throw new PgError(
      'ERROR',
      SqlState.ProgramLimitExceeded,
      `${aggregate} across shards holds its values in the proxy, and these exceed ${formatBytes(this.maxBytes)} for this statement`,
      undefined,
      'Filter on the sharding key (or GROUP BY it) so that fewer values meet in the proxy, or route the query to one shard.',
    );
  }
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 && n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

// How far a shard's replicas trail its primary, from what the replay-LSN monitor saw (pure: samples and clock passed
// in). Bytes: the primary's current WAL position minus the replica's replay position. Milliseconds: how long ago the
// primary was first seen past the replica's replay position (the monitor keeps the primary's positions with the time
// it saw each), so an idle primary writing a checkpoint record does not make a replica look minutes behind, as a
// last-replayed-commit timestamp would.

/**
 * The monitor's query (one row): whether the server is in recovery, its WAL position in bytes (a replica's replay
 * position, else the one it received; a primary's current position) — as numeric text.
 */
export const LSN_QUERY =
  'SELECT pg_catalog.pg_is_in_recovery(), (CASE WHEN pg_catalog.pg_is_in_recovery() THEN ' +
  'COALESCE(pg_catalog.pg_last_wal_replay_lsn(), pg_catalog.pg_last_wal_receive_lsn()) ' +
  "ELSE pg_catalog.pg_current_wal_lsn() END - '0/0'::pg_catalog.pg_lsn)::text";

/** One server's answer to LSN_QUERY. */
export interface LsnReading {
  isInRecovery: boolean;
  /** WAL position in bytes (null: a replica that has received nothing yet). */
  lsn: bigint | null;
}

/** Reads LSN_QUERY's row; null when it is not one. */
export function readLsnRow(row: readonly (string | null)[] | undefined): LsnReading | null {
  if (row === undefined || row.length < 2) return null;
  const isInRecovery = row[0] === 't';
  const text = row[1];
  if (text === null) return { isInRecovery, lsn: null };
  if (!/^\d+$/.test(text)) return null;
  return { isInRecovery, lsn: BigInt(text) };
}

/** An LSN in bytes as PostgreSQL prints a pg_lsn: `X/Y`, upper-case hex halves. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export interface ReplicaLag {
  bytes: number;
  ms: number;
}

export const NO_LAG: ReplicaLag = { bytes: 0, ms: 0 };

/** The primary's WAL positions as the monitor saw them, oldest first; only a position past the last one is kept. */
export class PrimaryHistory {
  private readonly samples: { lsn: bigint; atMs: number }[] = [];

  /** The primary was at `lsn` at `atMs`. */
  record(lsn: bigint, atMs: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && lsn <= last.lsn) return;
    this.samples.push({ lsn, atMs });
  }

  /** The primary's last position seen (null: none yet). */
  get current(): bigint | null {
    return this.samples[this.samples.length - 1]?.lsn ?? null;
  }

  /** How far a replica replaying at `replayLsn` trails the primary, at `nowMs`. */
  lagOf(replayLsn: bigint | null, nowMs: number): ReplicaLag {
    const current = this.current;
    if (current === null) return NO_LAG;
    if (replayLsn === null) return { bytes: Number(current), ms: nowMs - this.samples[0].atMs };
    if (replayLsn >= current) return NO_LAG;
    const firstAhead = this.samples.find((s) => s.lsn > replayLsn) ?? this.samples[this.samples.length - 1];
    return { bytes: Number(current - replayLsn), ms: Math.max(0, nowMs - firstAhead.atMs) };
  }

  /** Forget the positions every replica has replayed past (keeping the last one). */
  trim(slowestReplayLsn: bigint): void {
    let n = 0;
    while (n < this.samples.length - 1 && this.samples[n].lsn <= slowestReplayLsn) n++;
    this.samples.splice(0, n);
  }
}

/** Why `lag` bans a replica under the thresholds (null: it does not; a null threshold is off). */
export function lagBanReason(lag: ReplicaLag, maxMs: number | null, maxBytes: number | null): string | null {
  if (maxBytes !== null && lag.bytes > 0 && lag.bytes >= maxBytes)
    return `replica lag of ${lag.bytes} bytes reached ban_replica_lag_bytes (${maxBytes})`;
  if (maxMs !== null && lag.bytes > 0 && lag.ms >= maxMs)
    return `replica lag of ${lag.ms} ms reached ban_replica_lag (${maxMs} ms)`;
  return null;
}

// PgDog's `pgdog.unique_id()`: 64-bit ids from the clock, this proxy's node id and a per-millisecond sequence, in
// PgDog's two layouts (pgdog/src/unique_id.rs), so ids made by shardgate and by PgDog share one space:
//   standard: 41 bits of milliseconds since PgDog's epoch << 22 | 10-bit node << 12 | 12-bit sequence (≤ 2^63 - 1)
//   compact:  41 bits of milliseconds since PgDog's epoch << 12 |  6-bit node <<  6 |  6-bit sequence (≤ 2^53 - 1,
//             exact as a JavaScript number)
// plus `unique_id_min`. Ids of one generator only ever increase: a sequence used up within a millisecond waits for the
// next one (at most a millisecond), and a clock that goes back is not followed (the last millisecond is kept). Pure:
// the clock is passed in; no timers, no logging.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

export const UNIQUE_ID_FUNCTIONS = ['standard', 'compact'] as const;
export type UniqueIdFunction = (typeof UNIQUE_ID_FUNCTIONS)[number];

/** PgDog's epoch: 2025-11-26T19:13:15Z, in Unix milliseconds. */
export const UNIQUE_ID_EPOCH_MS = 1_764_184_395_000;
/** 41 bits of milliseconds: about 69 years from the epoch. */
export const TIMESTAMP_BITS = 41;
const MAX_ELAPSED_MS = 2 ** TIMESTAMP_BITS - 1;

export interface UniqueIdLayout {
  readonly nodeBits: number;
  readonly sequenceBits: number;
  /** The largest id the layout may give, `unique_id_min` included: i64's maximum, or 2^53 - 1 (compact). */
  readonly maxId: bigint;
}

export const UNIQUE_ID_LAYOUTS: Readonly<Record<UniqueIdFunction, UniqueIdLayout>> = {
  standard: { nodeBits: 10, sequenceBits: 12, maxId: (1n << 63n) - 1n },
  compact: { nodeBits: 6, sequenceBits: 6, maxId: (1n << 53n) - 1n },
};

/** The largest node id of a layout (1023 standard, 63 compact). */
export function maxNodeId(fn: UniqueIdFunction): number {
  return 2 ** UNIQUE_ID_LAYOUTS[fn].nodeBits - 1;
}

/**
 * The node id in a `NODE_ID` value, read as PgDog reads it: the digits after the last `-` (`shardgate-2` → 2), or the
 * whole value when it has no `-` (`7` → 7). Null when that part is not a decimal number.
 */
export function parseNodeId(value: string): number | null {
  const dash = value.lastIndexOf('-');
  const digits = dash < 0 ? value : value.slice(dash + 1);
  if (!/^[0-9]+$/.test(digits)) return null;
  return Number(digits); // past 2^53 only in size: above every layout's maximum either way
}

export interface UniqueIdOptions {
  readonly fn: UniqueIdFunction;
  /** 0 … maxNodeId(fn); checked when the configuration is read. */
  readonly nodeId: number;
  /** Added to every id (0 … the layout's maximum; an id it takes past that maximum is refused). */
  readonly minId: bigint;
  /** Unix milliseconds; Date.now by default. */
  readonly now?: () => number;
}

export class UniqueIdGenerator {
  readonly fn: UniqueIdFunction;
  readonly nodeId: number;
  readonly minId: bigint;
  private readonly now: () => number;
  private readonly maxId: bigint;
  private readonly maxSequence: number;
  private readonly timestampShift: bigint;
  private readonly nodePart: bigint;
  /** The millisecond of the last id (Unix ms), and the sequence used in it. */
  private lastMs = -1;
  private sequence = 0;
  /** Ids made while the clock read earlier than the last id's millisecond (they went on from that millisecond). */
  clockBackwardsCount = 0;

  constructor(options: UniqueIdOptions) {
    const layout = UNIQUE_ID_LAYOUTS[options.fn];
    if (!Number.isInteger(options.nodeId) || options.nodeId < 0 || options.nodeId > maxNodeId(options.fn))
      throw new RangeError(`node id ${options.nodeId} does not fit the ${options.fn} layout`);
    if (options.minId < 0n || options.minId > layout.maxId)
      throw new RangeError(`unique_id_min ${options.minId} is out of range for the ${options.fn} layout`);
    this.fn = options.fn;
    this.nodeId = options.nodeId;
    this.minId = options.minId;
    this.now = options.now ?? Date.now;
    this.maxId = layout.maxId;
    this.maxSequence = 2 ** layout.sequenceBits - 1;
    this.timestampShift = BigInt(layout.nodeBits + layout.sequenceBits);
    this.nodePart = BigInt(options.nodeId) << BigInt(layout.sequenceBits);
  }

  /** The next id, greater than every id this generator gave before. */
  next(): bigint {
    let ms = this.now();
    if (ms < this.lastMs) {
      // The clock went back (NTP step, VM restore): going on from the last millisecond keeps the ids increasing
      // without waiting for the clock to catch up (PgDog waits). Ids stay unique within this process; a restart
      // before the clock has caught up could repeat ids made since the step, as with PgDog.
      this.clockBackwardsCount++;
      ms = this.lastMs;
    }
    if (ms === this.lastMs) {
      this.sequence++;
      if (this.sequence > this.maxSequence) {
        ms = this.nextMillisecond();
        this.sequence = 0;
      }
    } else {
      this.sequence = 0;
    }
    this.lastMs = ms;
    const elapsed = ms - UNIQUE_ID_EPOCH_MS;
    if (elapsed < 0) {
      throw new PgError(
        'ERROR',
        SqlState.ObjectNotInPrerequisiteState,
        `pgdog.unique_id() cannot make an id: the system clock (${new Date(ms).toISOString()}) is before the ids' epoch (2025-11-26T19:13:15Z)`,
        undefined,
        'Set the clock of the proxy’s host right.',
      );
    }
    if (elapsed > MAX_ELAPSED_MS) {
      throw new PgError(
        'ERROR',
        SqlState.NumericValueOutOfRange,
        'pgdog.unique_id() cannot make an id: 41 bits of milliseconds since 2025-11-26 are used up',
      );
    }
    const id =
      ((BigInt(elapsed) << this.timestampShift) | this.nodePart | BigInt(this.sequence)) + this.minId;
    if (id > this.maxId) {
      throw new PgError(
        'ERROR',
        SqlState.NumericValueOutOfRange,
        `pgdog.unique_id() cannot make an id: with unique_id_min = ${this.minId} it would pass ${this.maxId}, the largest id of the ${this.fn} layout`,
        undefined,
        'Lower unique_id_min (ids of later milliseconds are larger).',
      );
    }
    return id;
  }

  /**
   * The millisecond after the last one, once the sequence of the last is used up: the clock is waited for while it
   * reads that same millisecond (less than a millisecond: a short spin, no timer); when it reads an earlier one (it
   * went back), the next millisecond is taken without waiting.
   */
  private nextMillisecond(): number {
    for (;;) {
      const ms = this.now();
      if (ms > this.lastMs) return ms;
      if (ms < this.lastMs) return this.lastMs + 1;
    }
  }
}

/** The parts of an id of `fn` (after `minId` is taken off): for tests and for operators reading an id. */
export function decodeUniqueId(
  id: bigint,
  fn: UniqueIdFunction,
  minId = 0n,
): { unixMs: number; nodeId: number; sequence: number } {
  const { nodeBits, sequenceBits } = UNIQUE_ID_LAYOUTS[fn];
  const base = id - minId;
  return {
    unixMs: Number(base >> BigInt(nodeBits + sequenceBits)) + UNIQUE_ID_EPOCH_MS,
    nodeId: Number((base >> BigInt(sequenceBits)) & ((1n << BigInt(nodeBits)) - 1n)),
    sequence: Number(base & ((1n << BigInt(sequenceBits)) - 1n)),
  };
}

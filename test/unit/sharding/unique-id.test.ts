// PgDog's pgdog.unique_id() ids: the two layouts bit for bit (PgDog's own regression values), ids that only increase,
// a sequence used up within a millisecond, a clock going back, unique_id_min, and NODE_ID read as PgDog reads it.
// The clock is a fake: each test says what it reads.
import { describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import {
  decodeUniqueId,
  maxNodeId,
  parseNodeId,
  UNIQUE_ID_EPOCH_MS,
  UniqueIdGenerator,
  type UniqueIdFunction,
} from '../../../src/sharding/unique-id.js';

/** A clock reading `readings` in turn, then the last one for ever; `calls` counts the readings taken. */
function fakeClock(...readings: number[]): { now: () => number; calls: () => number } {
  let i = 0;
  return {
    now: () => readings[Math.min(i++, readings.length - 1)],
    calls: () => i,
  };
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return null;
}

function generator(fn: UniqueIdFunction, nodeId: number, now: () => number, minId = 0n): UniqueIdGenerator {
  return new UniqueIdGenerator({ fn, nodeId, minId, now });
}

describe('standard layout (41-bit ms << 22 | 10-bit node << 12 | 12-bit sequence)', () => {
  it('gives PgDog’s own values for a fixed clock (pgdog/src/unique_id.rs regression test)', () => {
    const now = 1_775_590_268_126;
    const g = generator('standard', 42, fakeClock(now, now, now + 1).now);
    expect(g.next()).toBe(47_839_699_276_046_336n);
    expect(g.next()).toBe(47_839_699_276_046_337n);
    expect(g.next()).toBe(47_839_699_280_240_640n);
    expect(decodeUniqueId(47_839_699_276_046_337n, 'standard')).toEqual({
      unixMs: now,
      nodeId: 42,
      sequence: 1,
    });
  });

  it('puts the fields where the layout says, with every field at its maximum still below 2^63', () => {
    const ms = UNIQUE_ID_EPOCH_MS + 5;
    const id = generator('standard', 1023, () => ms).next();
    expect(id).toBe((5n << 22n) | (1023n << 12n) | 0n);
    expect(maxNodeId('standard')).toBe(1023);
    const last = ((2n ** 41n - 1n) << 22n) | (1023n << 12n) | 4095n;
    expect(last).toBe(2n ** 63n - 1n);
  });

  it('adds unique_id_min after packing (PgDog’s regression value)', () => {
    const g = generator('standard', 3, () => UNIQUE_ID_EPOCH_MS + 321, 1_000_000n);
    expect(g.next()).toBe(1_347_383_872n);
  });
});

describe('compact layout (41-bit ms << 12 | 6-bit node << 6 | 6-bit sequence)', () => {
  it('puts the fields where the layout says, and ids stay exact JavaScript numbers', () => {
    const ms = UNIQUE_ID_EPOCH_MS + 1_000;
    const g = generator('compact', 63, () => ms);
    const first = g.next();
    expect(first).toBe((1000n << 12n) | (63n << 6n));
    expect(g.next()).toBe(first + 1n);
    expect(maxNodeId('compact')).toBe(63);
    const last = ((2n ** 41n - 1n) << 12n) | (63n << 6n) | 63n;
    expect(last).toBe(2n ** 53n - 1n);
    expect(Number.isSafeInteger(Number(generator('compact', 63, Date.now).next()))).toBe(true);
  });
});

describe('ids only increase', () => {
  it('ids of the real clock, both layouts: strictly increasing, each one new', () => {
    for (const fn of ['standard', 'compact'] as const) {
      const g = generator(fn, 7, Date.now);
      let previous = -1n;
      let outOfOrder = 0;
      for (let i = 0; i < 5_000; i++) {
        const id = g.next();
        if (id <= previous) outOfOrder++;
        previous = id;
      }
      expect(outOfOrder).toBe(0);
    }
  });

  it('a sequence used up within a millisecond waits for the next one (PgDog’s regression values)', () => {
    const ms = UNIQUE_ID_EPOCH_MS + 99;
    // The clock reads ms for 4096 ids and the next call, twice more while that call waits, then ms + 1.
    const clock = fakeClock(...Array<number>(4096 + 3).fill(ms), ms + 1);
    const g = generator('standard', 7, clock.now);
    let last = 0n;
    for (let i = 0; i < 4096; i++) last = g.next();
    expect(last).toBe(415_268_863n); // 99 << 22 | 7 << 12 | 4095
    const next = g.next();
    expect(next).toBe(419_459_072n); // 100 << 22 | 7 << 12 | 0
    expect(clock.calls()).toBe(4096 + 1 + 3); // read again until the millisecond changed
  });

  it('compact: 64 ids per millisecond, the 65th waits for the next millisecond', () => {
    const ms = UNIQUE_ID_EPOCH_MS + 10;
    const g = generator('compact', 1, fakeClock(...Array<number>(64 + 2).fill(ms), ms + 1).now);
    const ids = Array.from({ length: 65 }, () => g.next());
    expect(decodeUniqueId(ids[63], 'compact')).toEqual({ unixMs: ms, nodeId: 1, sequence: 63 });
    expect(decodeUniqueId(ids[64], 'compact')).toEqual({ unixMs: ms + 1, nodeId: 1, sequence: 0 });
  });

  it('a clock going back is not followed: ids go on from the last millisecond, without waiting', () => {
    const ms = UNIQUE_ID_EPOCH_MS + 50_000;
    const g = generator('compact', 2, fakeClock(ms, ms - 10_000).now); // an NTP step back of 10 s
    const before = g.next();
    const after = Array.from({ length: 100 }, () => g.next());
    let previous = before;
    for (const id of after) {
      expect(id > previous).toBe(true);
      previous = id;
    }
    // 64 ids fit in the last millisecond; the rest take the following ones, though the clock is still behind.
    expect(decodeUniqueId(after[62], 'compact').unixMs).toBe(ms);
    expect(decodeUniqueId(after[63], 'compact').unixMs).toBe(ms + 1);
    expect(decodeUniqueId(after[99], 'compact').unixMs).toBe(ms + 1);
    expect(g.clockBackwardsCount).toBe(100);
  });
});

describe('unique_id_min and the clock’s limits', () => {
  it('unique_id_min is added to every id: ids start above it', () => {
    const min = 5_000_000_000n;
    const g = generator('standard', 5, () => UNIQUE_ID_EPOCH_MS, min);
    expect(g.next()).toBe(min + (5n << 12n));
    expect(decodeUniqueId(g.next(), 'standard', min)).toEqual({
      unixMs: UNIQUE_ID_EPOCH_MS,
      nodeId: 5,
      sequence: 1,
    });
  });

  it('an id unique_id_min takes past the layout’s maximum is refused (22003), not wrapped', () => {
    const g = generator('compact', 0, () => UNIQUE_ID_EPOCH_MS + 1_000, 2n ** 53n - 1_000n);
    const err = thrownBy(() => g.next());
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).code).toBe('22003');
    expect((err as PgError).message).toMatch(/unique_id_min/);
  });

  it('a clock before the epoch makes no id (negative ids would sort before every other)', () => {
    const g = generator('standard', 0, () => UNIQUE_ID_EPOCH_MS - 1);
    expect(() => g.next()).toThrow(/before the ids' epoch/);
  });

  it('a node id or minimum the layout cannot hold is refused when the generator is made', () => {
    expect(() => generator('compact', 64, Date.now)).toThrow(RangeError);
    expect(() => generator('standard', 1024, Date.now)).toThrow(RangeError);
    expect(() => generator('standard', 0, Date.now, -1n)).toThrow(RangeError);
  });
});

describe('NODE_ID as PgDog reads it', () => {
  it('the number after the last "-", or the whole value', () => {
    expect(parseNodeId('shardgate-0')).toBe(0);
    expect(parseNodeId('pgdog-prod-12')).toBe(12);
    expect(parseNodeId('7')).toBe(7);
    expect(parseNodeId('node-007')).toBe(7);
  });

  it('no number at the end: null', () => {
    expect(parseNodeId('shardgate')).toBeNull();
    expect(parseNodeId('shardgate-')).toBeNull();
    expect(parseNodeId('shardgate-7d9f8-x2b4c')).toBeNull(); // a Deployment's pod name
    expect(parseNodeId('')).toBeNull();
    expect(parseNodeId('1.5')).toBeNull();
  });
});

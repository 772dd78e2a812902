// read-overrides.ts with read-intent.ts classifyTexts: SET pgdog.role / pgdog.min_lsn kept as PostgreSQL keeps a
// setting — a SET in a block holds in the block and for the session once it commits, a ROLLBACK (or a failed block)
// undoes it, SET LOCAL ends with the block and does nothing outside one, RESET / RESET ALL / DISCARD ALL end the
// override — whether the block's statements come one request at a time (the status before each said) or in one.
import { beforeAll, describe, expect, it } from 'vitest';
import { classifyTexts } from '../../../src/frontend/read-intent.js';
import { ReadOverrides } from '../../../src/frontend/read-overrides.js';
import { TxStatus } from '../../../src/protocol/codes.js';
import { initParser } from '../../../src/router/parser.js';

beforeAll(async () => {
  await initParser();
});

const { Idle: I, InTransaction: T, Failed: E } = TxStatus;

/** A session's overrides, with the positions it required (shard → lsn, the highest). */
function session(): { overrides: ReadOverrides; required: Map<number, bigint> } {
  const required = new Map<number, bigint>();
  const overrides = new ReadOverrides((positions) => {
    for (const [shard, lsn] of positions) if ((required.get(shard) ?? -1n) < lsn) required.set(shard, lsn);
  });
  return { overrides, required };
}

/** Run requests one at a time: each [status before it, its SQL]; returns the intent of the last. */
function run(overrides: ReadOverrides, requests: readonly (readonly [number, string])[]): string {
  let intent = '';
  for (const [status, sql] of requests) {
    overrides.sync(status);
    intent = classifyTexts([sql], overrides).intent;
  }
  return intent;
}

describe('SET pgdog.role in a transaction block', () => {
  it('holds in the block at once, and for the session once the block commits', () => {
    const { overrides } = session();
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.role = 'replica'"],
    ]);
    expect(overrides.role).toBe('replica');
    run(overrides, [[T, 'COMMIT']]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('replica');
  });

  it('is undone by ROLLBACK, by a failed block ended with COMMIT, and by ROLLBACK in the same request', () => {
    const { overrides } = session();
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.role = 'replica'"],
      [T, 'ROLLBACK'],
    ]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.role = 'replica'"],
      [T, 'SELECT 1 / 0'],
      [E, 'COMMIT'],
    ]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    run(overrides, [[I, "BEGIN; SET pgdog.role = 'replica'; ROLLBACK"]]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    // The error skipped the COMMIT of the same Query: the block is failed, and its end a rollback.
    run(overrides, [
      [I, "BEGIN; SET pgdog.role = 'replica'; SELECT 1 / 0; COMMIT"],
      [E, 'COMMIT'],
    ]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
  });

  it('is kept by a COMMIT in the same request, and by a block that opens and commits in one Query', () => {
    const { overrides } = session();
    run(overrides, [[I, "BEGIN; SET pgdog.role = 'replica'; COMMIT"]]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('replica');
  });

  it('SET LOCAL ends with the block, and does nothing outside one; a later SET in the block replaces it', () => {
    const { overrides } = session();
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET LOCAL pgdog.role = 'replica'"],
    ]);
    expect(overrides.role).toBe('replica');
    run(overrides, [[T, 'COMMIT']]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    expect(run(overrides, [[I, "SET LOCAL pgdog.role = 'replica'"]])).toBe('read');
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET LOCAL pgdog.role = 'primary'"],
      [T, "SET pgdog.role = 'replica'"],
      [T, 'COMMIT'],
    ]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('replica');
  });

  it('RESET in a block is undone by ROLLBACK and kept by COMMIT; RESET ALL and DISCARD ALL end the override', () => {
    const { overrides } = session();
    run(overrides, [
      [I, "SET pgdog.role = 'replica'"],
      [I, 'BEGIN'],
      [T, 'RESET pgdog.role'],
    ]);
    expect(overrides.role).toBeNull();
    run(overrides, [[T, 'ROLLBACK']]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('replica');
    run(overrides, [
      [I, 'BEGIN'],
      [T, 'RESET pgdog.role'],
      [T, 'COMMIT'],
    ]);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    for (const reset of ['RESET ALL', 'DISCARD ALL']) {
      run(overrides, [
        [I, "SET pgdog.role = 'replica'"],
        [I, reset],
      ]);
      expect([reset, overrides.role]).toEqual([reset, null]);
    }
  });

  it('follows a block whose end the proxy saw itself (a sharded session: blockEnded), and AND CHAIN', () => {
    const { overrides } = session();
    // A sharded BEGIN is answered by the proxy: the block is known from the status before the SET.
    run(overrides, [[T, "SET pgdog.role = 'replica'"]]);
    overrides.blockEnded(false);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('read');
    run(overrides, [[T, "SET pgdog.role = 'replica'"]]);
    overrides.blockEnded(true);
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('replica');
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.role = 'primary'"],
      [T, 'COMMIT AND CHAIN'],
      [T, 'RESET pgdog.role'],
      [T, 'ROLLBACK'],
    ]);
    // The chained block's RESET rolled back: 'primary' holds (a read sent there on purpose counts as a write).
    expect(run(overrides, [[I, 'SELECT 1']])).toBe('write');
  });
});

describe('SET pgdog.min_lsn in a transaction block', () => {
  it('is required for the session when the block commits; ROLLBACK, SET LOCAL and RESET leave nothing', () => {
    const { overrides, required } = session();
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.min_lsn = '0/10'"],
    ]);
    expect([overrides.blockPosition(0), required.size]).toEqual([16n, 0]);
    run(overrides, [
      [T, 'ROLLBACK'],
      [I, 'BEGIN'],
      [T, "SET LOCAL pgdog.min_lsn = '0/20'"],
    ]);
    expect(overrides.blockPosition(0)).toBe(32n);
    run(overrides, [
      [T, 'COMMIT'],
      [I, 'BEGIN'],
      [T, "SET pgdog.min_lsn = '0/30'"],
      [T, 'RESET pgdog.min_lsn'],
      [T, 'COMMIT'],
      [I, 'SELECT 1'],
    ]);
    expect([overrides.blockPosition(0), required.size]).toEqual([null, 0]);
    run(overrides, [
      [I, 'BEGIN'],
      [T, "SET pgdog.min_lsn = '0:0/40,1:0/50'"],
      [T, 'COMMIT'],
      [I, 'SELECT 1'],
    ]);
    expect(required).toEqual(
      new Map([
        [0, 64n],
        [1, 80n],
      ]),
    );
  });

  it('outside a block: SET is required at once, SET LOCAL does nothing', () => {
    const { overrides, required } = session();
    run(overrides, [
      [I, "SET LOCAL pgdog.min_lsn = '0/10'"],
      [I, "SET pgdog.min_lsn = '0/20'"],
    ]);
    expect(required).toEqual(new Map([[0, 32n]]));
  });
});

// Unit tests for the row strategies whose behaviour reply-merger.test.ts does not reach on its own: split INSERT …
// RETURNING rows in VALUES order (ValuesOrderMerge) with its flow control, GROUP BY ordered by collated text (ranks
// asked after the groups are merged), and the k-way merge holding every row, unbounded by the queues, until ranks.
import { describe, expect, it } from 'vitest';
import { PASS_THROUGH_SPEC, sortKey, type MergeSpec } from '../../../src/execute/merge-spec.js';
import { MERGE_QUEUE_MAX_ROWS, ReplyMerger } from '../../../src/execute/reply-merger.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { commandComplete, dataRow, Emitted, rowDescription } from './merge-frames.js';

describe('split INSERT … RETURNING: rows in VALUES order', () => {
  it('holds a shard’s rows until the rows before them in VALUES order have come', () => {
    const client = new Emitted();
    const spec: MergeSpec = { ...PASS_THROUGH_SPEC, rowShards: [1, 0, 1, 0] };
    const merger = new ReplyMerger(2, spec, client.emit);
    merger.push(0, dataRow(['row 1']));
    expect(client.rows()).toEqual([]); // row 0 (shard 1) first
    merger.push(1, dataRow(['row 0']));
    expect(client.rows()).toEqual([['row 0'], ['row 1']]);
    merger.push(0, dataRow(['row 3']));
    merger.push(0, commandComplete('INSERT 0 2'));
    expect(client.rows()).toHaveLength(2);
    merger.push(1, dataRow(['row 2']));
    merger.push(1, commandComplete('INSERT 0 2'));
    expect(client.rows()).toEqual([['row 0'], ['row 1'], ['row 2'], ['row 3']]);
    expect(client.kinds).toBe('DDDDC');
    expect(client.frames.at(-1)?.toString('utf8', 5, 15)).toBe('INSERT 0 4');
  });

  it('reports a shard whose rows wait past the queue bound as full, and drained once they went out', () => {
    const client = new Emitted();
    const waiting = MERGE_QUEUE_MAX_ROWS + 1;
    const spec: MergeSpec = { ...PASS_THROUGH_SPEC, rowShards: [0, ...new Array<number>(waiting).fill(1)] };
    const merger = new ReplyMerger(2, spec, client.emit);
    for (let i = 0; i < waiting; i++) merger.push(1, dataRow([String(i)]));
    expect(merger.isQueueFull(1)).toBe(true);
    expect(merger.isQueueFull(0)).toBe(false);
    expect(merger.isQueueDrained(1)).toBe(false);
    merger.push(0, dataRow(['first']));
    expect(client.rows()).toHaveLength(waiting + 1);
    expect(merger.isQueueFull(1)).toBe(false);
    expect(merger.isQueueDrained(1)).toBe(true);
  });
});

describe('GROUP BY ordered by text in a collation that is not byte order', () => {
  const spec = (limit: number | null): MergeSpec => ({
    ...PASS_THROUGH_SPEC,
    groupBy: [0],
    aggregates: [{ column: 1, fn: 'count' }],
    orderBy: [sortKey(0)],
    limit,
    textCollation: 'en_US.UTF-8',
  });
  const description = rowDescription([[TypeOid.text, 16385, 2], [TypeOid.int8]]);

  function mergedGroups(limit: number | null): { client: Emitted; merger: ReplyMerger } {
    const client = new Emitted();
    const merger = new ReplyMerger(2, spec(limit), client.emit);
    const shards = [
      [
        ['a', '1'],
        ['B', '2'],
      ],
      [
        ['a', '3'],
        ['c', '1'],
      ],
    ];
    shards.forEach((rows, shard) => {
      merger.push(shard, description);
      for (const row of rows) merger.push(shard, dataRow(row));
      merger.push(shard, commandComplete(`SELECT ${rows.length}`));
    });
    return { client, merger };
  }

  it('asks for the ranks of the merged groups’ keys, then sends the groups in that order', () => {
    const { client, merger } = mergedGroups(null);
    expect(merger.isDone).toBe(true);
    expect(merger.needsRanks).toBe(true);
    expect(client.kinds).toBe('T'); // no rows and no tag before the ranks
    expect(merger.rankRequest()).toEqual({
      values: ['a', 'B', 'c'],
      collation: null,
      columns: [{ tableOid: 16385, column: 2 }],
    });
    merger.setRanks(
      new Map([
        ['a', 0],
        ['B', 1],
        ['c', 2],
      ]),
    );
    expect(merger.needsRanks).toBe(false);
    expect(client.rows()).toEqual([
      ['a', '4'],
      ['B', '2'],
      ['c', '1'],
    ]);
    expect(client.frames.at(-1)?.toString('utf8', 5, 13)).toBe('SELECT 3');
  });

  it('applies LIMIT after the ranked order', () => {
    const { client, merger } = mergedGroups(2);
    merger.setRanks(
      new Map([
        ['c', 0],
        ['B', 1],
        ['a', 2],
      ]),
    );
    expect(client.rows()).toEqual([
      ['c', '1'],
      ['B', '2'],
    ]);
    expect(client.frames.at(-1)?.toString('utf8', 5, 13)).toBe('SELECT 2');
  });

  it('ends with the one error when the ranks cannot be had', () => {
    const { client, merger } = mergedGroups(null);
    merger.abort(PgError.internal('the rank query failed'));
    expect(merger.hasFailed).toBe(true);
    expect(merger.needsRanks).toBe(false);
    expect(client.kinds).toBe('TE');
  });
});

describe('ORDER BY on collated text: every row waits for the ranks', () => {
  it('never reports a queue full while the rows wait (the ranks need them all)', () => {
    const client = new Emitted();
    const spec: MergeSpec = { ...PASS_THROUGH_SPEC, orderBy: [sortKey(0)], textCollation: 'en_US.UTF-8' };
    const merger = new ReplyMerger(2, spec, client.emit);
    merger.push(0, rowDescription([[TypeOid.text, 16385, 1]]));
    merger.push(1, rowDescription([[TypeOid.text, 16385, 1]]));
    for (let i = 0; i <= MERGE_QUEUE_MAX_ROWS; i++) merger.push(0, dataRow([`w${i}`]));
    merger.push(1, dataRow(['x']));
    expect(merger.isQueueFull(0)).toBe(false);
    expect(client.rows()).toEqual([]);
    merger.push(0, commandComplete(`SELECT ${MERGE_QUEUE_MAX_ROWS + 1}`));
    expect(merger.needsRanks).toBe(false); // shard 1 is still running
    merger.push(1, commandComplete('SELECT 1'));
    expect(merger.needsRanks).toBe(true);
    const values = merger.rankRequest().values;
    expect(values).toHaveLength(MERGE_QUEUE_MAX_ROWS + 2);
    // The database's order, made up: each shard's rows in the order it sent them (not byte order: w10 after w9), and
    // x between w5000 and w5001.
    const rank = (v: string): number => (v === 'x' ? 10_001 : 2 * Number(v.slice(1)));
    const order = [...values].sort((a, b) => rank(a) - rank(b));
    expect(order.indexOf('x')).toBe(5001);
    merger.setRanks(new Map(order.map((v, i) => [v, i])));
    expect(client.rows().map(([v]) => v)).toEqual(order);
  });
});

// Merge micro-benchmark (pure CPU, no servers): DataRows from 3 shards through ReplyMerger in the modes that hold
// rows until the end — GROUP BY partial groups (count, sum of numeric, avg from sum and count), count(DISTINCT x)
// from the values the shards group by, string_agg(… ORDER BY …) from ordered arrays — and in the two that pass rows
// on as they come: the ORDER BY k-way merge and plain streaming; reported as nanoseconds per row pushed (median of the
// runs). Not part of `npm test`.
//
//   npx tsx bench/merge-micro.ts                      # --rows 300000 --runs 7
import { performance } from 'node:perf_hooks';
import type { MergeSpec } from '../src/execute/merge-spec.js';
import { ReplyMerger } from '../src/execute/reply-merger.js';
import { TypeOid } from '../src/execute/value-compare.js';
import { parseArgs } from './lib/args.js';
import { fmtFixed, textTable } from './lib/report.js';

const SCRIPT = 'bench/merge-micro.ts';
const SHARDS = 3;

const opts = parseArgs(SCRIPT, {
  rows: { default: 300_000, help: 'rows per case, all shards together' },
  runs: { default: 7, help: 'timed runs per case (after one warm-up run)' },
});

function frame(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function rowDescription(oids: readonly number[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, oids.length])];
  oids.forEach((oid, i) => {
    const fixed = Buffer.alloc(18);
    fixed.writeInt16BE(i + 1, 4);
    fixed.writeUInt32BE(oid, 6);
    fixed.writeInt16BE(-1, 10);
    fixed.writeInt32BE(-1, 12);
    parts.push(Buffer.from(`c${i}\0`), fixed);
  });
  return frame('T', Buffer.concat(parts));
}

function dataRow(values: readonly (string | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, values.length])];
  for (const v of values) {
    const length = Buffer.alloc(4);
    if (v === null) {
      length.writeInt32BE(-1);
      parts.push(length);
      continue;
    }
    const bytes = Buffer.from(v, 'utf8');
    length.writeInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return frame('D', Buffer.concat(parts));
}

const complete = frame('C', Buffer.from('SELECT 1\0'));

interface Case {
  name: string;
  spec: MergeSpec;
  oids: number[];
  /** Each shard's rows, as frames. */
  rows: Buffer[][];
}

function shardsOf(total: number, row: (i: number) => (string | null)[]): Buffer[][] {
  const out: Buffer[][] = Array.from({ length: SHARDS }, () => []);
  for (let i = 0; i < total; i++) out[i % SHARDS].push(dataRow(row(i)));
  return out;
}

const n = opts.rows;
const cases: Case[] = [
  {
    // Each shard returns its partial group for every one of n / 3 groups.
    name: 'GROUP BY: count, sum(numeric), avg',
    spec: {
      orderBy: [],
      limit: null,
      offset: 0,
      groupBy: [0],
      aggregates: [
        { column: 1, fn: 'count' },
        { column: 2, fn: 'sum' },
        { column: 3, fn: 'avg', countColumn: 4 },
      ],
      hiddenCount: 1,
    },
    oids: [TypeOid.int8, TypeOid.int8, TypeOid.numeric, TypeOid.numeric, TypeOid.int8],
    rows: shardsOf(n, (i) => [String(Math.floor(i / SHARDS)), '3', '12.50', '40.25', '3']),
  },
  {
    // count(DISTINCT x) without GROUP BY: the shards return their distinct values, a third of them on two shards.
    name: 'count(DISTINCT x), values',
    spec: {
      orderBy: [],
      limit: null,
      offset: 0,
      groupBy: [],
      isGrandTotal: true,
      aggregates: [{ column: 0, fn: 'count', distinctColumn: 1 }],
      hiddenCount: 1,
    },
    oids: [TypeOid.int8, TypeOid.int8],
    rows: shardsOf(n, (i) => ['0', String(i % Math.ceil((n * 2) / 3))]),
  },
  {
    // string_agg(name, ',' ORDER BY id) grouped by 1,000 groups: 10 elements per array.
    name: 'string_agg ORDER BY, 10 per array',
    spec: {
      orderBy: [],
      limit: null,
      offset: 0,
      groupBy: [0],
      aggregates: [
        {
          column: 1,
          fn: 'string_agg',
          ordered: {
            valuesColumn: 2,
            keys: [{ column: 3, isDescending: false, isNullsFirst: false }],
            delimiter: Buffer.from(','),
          },
        },
      ],
      hiddenCount: 2,
    },
    oids: [TypeOid.int8, TypeOid.text, 1009, 1016],
    rows: shardsOf(n / 10, (i) => [
      String(i % 1000),
      null,
      `{${Array.from({ length: 10 }, (_, k) => `name${i}_${k}`).join(',')}}`,
      `{${Array.from({ length: 10 }, (_, k) => String(i * 10 + k)).join(',')}}`,
    ]),
  },
  {
    // ORDER BY id across shards: each shard's rows sorted, interleaved so that every push lets one row out.
    name: 'ORDER BY int8, k-way merge',
    spec: {
      orderBy: [{ column: 0, isDescending: false, isNullsFirst: false }],
      limit: null,
      offset: 0,
      aggregates: null,
    },
    oids: [TypeOid.int8, TypeOid.text],
    rows: shardsOf(n, (i) => [String(i), `name${i}`]),
  },
  {
    // No ORDER BY, no aggregates: rows pass through in arrival order.
    name: 'stream (no ORDER BY)',
    spec: { orderBy: [], limit: null, offset: 0, aggregates: null },
    oids: [TypeOid.int8, TypeOid.text],
    rows: shardsOf(n, (i) => [String(i), `name${i}`]),
  },
];

function runOnce(c: Case): number {
  let emitted = 0;
  const merger = new ReplyMerger(SHARDS, c.spec, () => {
    emitted++;
  });
  const description = rowDescription(c.oids);
  for (let s = 0; s < SHARDS; s++) merger.push(s, description);
  const t0 = performance.now();
  const longest = Math.max(...c.rows.map((r) => r.length));
  for (let i = 0; i < longest; i++) {
    for (let s = 0; s < SHARDS; s++) {
      const row = c.rows[s][i];
      if (row !== undefined) merger.push(s, row);
    }
  }
  for (let s = 0; s < SHARDS; s++) merger.push(s, complete);
  const ms = performance.now() - t0;
  if (!merger.isDone || merger.hasFailed || emitted < 2) throw new Error(`${c.name}: the merge failed`);
  return ms;
}

const table: string[][] = [];
for (const c of cases) {
  runOnce(c);
  const samples: number[] = [];
  for (let r = 0; r < opts.runs; r++) samples.push(runOnce(c));
  samples.sort((a, b) => a - b);
  const rows = c.rows.reduce((sum, r) => sum + r.length, 0);
  const median = samples[Math.floor(samples.length / 2)];
  table.push([c.name, String(rows), fmtFixed(median, 1), fmtFixed((median * 1e6) / rows, 0)]);
}
console.log(textTable(['case', 'rows', 'ms (median)', 'ns / row'], table));

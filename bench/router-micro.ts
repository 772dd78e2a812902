// Router micro-benchmark (pure CPU, no servers): for every statement of the client corpus
// (test/unit/router/corpus.ts), the time to parse it (libpg_query WASM) and to analyze it into a StatementPlan —
// what a plan-cache miss costs — the time of a plan-cache hit (target ≤ 5 µs), and what routing a whole request with
// its plan cached costs in SessionRouter.route (time and bytes allocated per request: a fan-out with ORDER BY, one
// shard by a key parameter or literal, an omnisharded read). Not part of `npm test`.
//
//   npx tsx bench/router-micro.ts                    # --iterations 200 --lookups 1000000
//   npx tsx bench/router-micro.ts --iterations 50 --top 10
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { analyzeStatement } from '../src/router/analyze.js';
import { initParser, parseStatements, type ParsedStatement } from '../src/router/parser.js';
import type { StatementPlan } from '../src/router/plan.js';
import { PlanCache } from '../src/router/plan-cache.js';
import { SessionRouter } from '../src/frontend/session-router.js';
import { Frontend } from '../src/protocol/codes.js';
import { SYNC } from '../src/protocol/messages.js';
import { MessageWriter } from '../src/protocol/writer.js';
import { extendedFrames } from '../test/helpers/extended-frames.js';
import { CORPUS } from '../test/unit/router/corpus.js';
import { SCHEMA } from '../test/unit/router/fixtures.js';
import { parseArgs } from './lib/args.js';
import { fmtFixed, textTable } from './lib/report.js';

const SCRIPT = 'bench/router-micro.ts';

// Bytes per route are read as heap growth, which a young-generation GC would hide: the bench runs itself again in a
// Node whose new space holds a whole measurement (256 MiB semi-spaces: no scavenge during one).
const SEMI_SPACE = '--min-semi-space-size=256';
if (!process.execArgv.includes(SEMI_SPACE)) {
  const args = ['--max-semi-space-size=256', SEMI_SPACE, ...process.execArgv, ...process.argv.slice(1)];
  process.exit(spawnSync(process.execPath, args, { stdio: 'inherit' }).status ?? 1);
}
const HIT_TARGET_US = 5;

const opts = parseArgs(SCRIPT, {
  iterations: { default: 200, help: 'timed parse/analyze runs per statement (after 20 warm-up runs)' },
  lookups: { default: 1_000_000, help: 'plan-cache lookups for the hit timing' },
  top: { default: 0, min: 0, help: 'show only the N slowest statements (0 = all)' },
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
}

/** Median microseconds of `fn` over `n` runs (after a short warm-up). */
function timeUs(n: number, fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    samples.push((performance.now() - t0) * 1000);
  }
  return median(samples);
}

await initParser();

// First call of all: what the very first query after startup pays (WASM and JIT warm-up).
const t0 = performance.now();
analyzeStatement(parseStatements(CORPUS[0].sql)[0], SCHEMA);
const firstUs = (performance.now() - t0) * 1000;

interface Row {
  client: string;
  sql: string;
  parseUs: number;
  analyzeUs: number;
}

const rows: Row[] = [];
for (const c of CORPUS) {
  let parsed: ParsedStatement[] = [];
  const parseUs = timeUs(opts.iterations, () => {
    parsed = parseStatements(c.sql);
  });
  let plan: StatementPlan | null = null;
  const analyzeUs = timeUs(opts.iterations, () => {
    plan = analyzeStatement(parsed[0], SCHEMA);
  });
  if (plan === null) throw new Error(`no plan for ${c.sql}`);
  rows.push({ client: c.client, sql: c.sql.replace(/\s+/g, ' '), parseUs, analyzeUs });
}

// Cache hits: every corpus text cached, looked up round-robin (Map lookup + LRU refresh).
const cache = new PlanCache(CORPUS.length);
for (const c of CORPUS)
  cache.set(
    c.sql,
    parseStatements(c.sql).map((s) => analyzeStatement(s, SCHEMA)),
  );
const texts = CORPUS.map((c) => c.sql);
let sink = 0;
for (let i = 0; i < 100_000; i++) sink += cache.get(texts[i % texts.length])?.length ?? 0;
const h0 = performance.now();
for (let i = 0; i < opts.lookups; i++) sink += cache.get(texts[i % texts.length])?.length ?? 0;
const hitUs = ((performance.now() - h0) * 1000) / opts.lookups;
if (sink === 0) throw new Error('cache lookups returned nothing');

// SessionRouter.route with the plan cached: Parse/Bind/Describe/Execute/Sync of one statement (the unnamed Parse
// repeated, as node-postgres and pgbench -M extended send it), routed again and again by one session.
function extendedRequest(sql: string, params: string[]): { types: number[]; frames: Buffer[] } {
  const frames = extendedFrames(sql, params);
  return { types: frames.map((f) => f[0]), frames };
}

/** pgbench -M simple: one Query with the key as a literal (routed by its literal-normalized text). */
function simpleRequest(sql: string): { types: number[]; frames: Buffer[] } {
  return { types: [Frontend.Query], frames: [new MessageWriter().cstring(sql).frame(Frontend.Query)] };
}

/** pgbench -M prepared: Bind / Describe / Execute / Sync of the statement `name` (parsed once, before). */
function preparedRequest(name: string, params: string[]): { types: number[]; frames: Buffer[] } {
  const b = new MessageWriter().cstring('').cstring(name).int16(0).int16(params.length);
  for (const p of params) b.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  const frames = extendedFrames('', params).slice(1); // Bind, Describe, Execute, Sync: the Bind replaced
  frames[0] = b.int16(0).frame(Frontend.Bind);
  return { types: frames.map((f) => f[0]), frames };
}

const PGBENCH_SELECT = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
const ROUTED: { name: string; sql: string; params: string[]; mode?: 'simple' | 'prepared' }[] = [
  { name: 'fan-out ORDER BY', sql: 'SELECT id, name FROM users ORDER BY id', params: [] },
  { name: 'one shard by $1', sql: PGBENCH_SELECT, params: ['7'] },
  { name: 'one shard by a literal', sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 7', params: [] },
  { name: 'omnisharded read', sql: 'SELECT name FROM countries', params: [] },
  // pgbench -S's request in its other two modes (the one above is -M extended's).
  {
    name: 'one shard, simple Query (literal)',
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
    params: [],
    mode: 'simple',
  },
  { name: 'one shard, named statement by $1', sql: PGBENCH_SELECT, params: ['48213'], mode: 'prepared' },
];
const routeRows: string[][] = [];
for (const r of ROUTED) {
  const router = new SessionRouter({
    schema: SCHEMA,
    plans: new PlanCache(),
    ...(r.mode === 'simple' ? { literalPlans: new PlanCache<StatementPlan | null>() } : {}),
    nextReadShard: () => 0,
    textCollation: null,
  });
  if (r.mode === 'prepared') {
    const parse = new MessageWriter().cstring('P_1').cstring(r.sql).int16(0).frame(Frontend.Parse);
    router.route([Frontend.Parse, Frontend.Sync], [parse, SYNC]);
  }
  const { types, frames } =
    r.mode === 'simple'
      ? simpleRequest(r.sql)
      : r.mode === 'prepared'
        ? preparedRequest('P_1', r.params)
        : extendedRequest(r.sql, r.params);
  const routeOnce = (): void => {
    const outcome = router.route(types, frames);
    if (outcome.kind === 'learn' || outcome.kind === 'mixed') throw new Error(`${r.name}: ${outcome.kind}`);
    sink++;
  };
  for (let i = 0; i < 50_000; i++) routeOnce();
  const n = Math.max(1, Math.floor(opts.lookups / 10));
  const r0 = performance.now();
  for (let i = 0; i < n; i++) routeOnce();
  const routeNs = ((performance.now() - r0) * 1e6) / n;
  // Bytes allocated per route: heap growth over 20,000 routes, the median of 5 runs (a run with a GC shrinks: left out).
  const grown: number[] = [];
  for (let run = 0; run < 5; run++) {
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20_000; i++) routeOnce();
    const delta = process.memoryUsage().heapUsed - before;
    if (delta >= 0) grown.push(delta / 20_000);
  }
  routeRows.push([r.name, fmtFixed(routeNs, 0), fmtFixed(median(grown), 0)]);
}

const shown =
  opts.top > 0
    ? [...rows].sort((a, b) => b.parseUs + b.analyzeUs - (a.parseUs + a.analyzeUs)).slice(0, opts.top)
    : rows;
process.stdout.write(
  textTable(
    ['client', 'statement', 'parse µs', 'analyze µs', 'miss µs'],
    shown.map((r) => [
      r.client,
      r.sql.length > 60 ? `${r.sql.slice(0, 57)}...` : r.sql,
      fmtFixed(r.parseUs, 1),
      fmtFixed(r.analyzeUs, 1),
      fmtFixed(r.parseUs + r.analyzeUs, 1),
    ]),
  ) + '\n\n',
);

const parse = rows.map((r) => r.parseUs);
const analyze = rows.map((r) => r.analyzeUs);
const total = rows.map((r) => r.parseUs + r.analyzeUs);
process.stdout.write(
  textTable(
    ['over the corpus', 'median', 'p95', 'max'],
    [
      [
        'parse µs',
        fmtFixed(median(parse), 1),
        fmtFixed(percentile(parse, 95), 1),
        fmtFixed(Math.max(...parse), 1),
      ],
      [
        'analyze µs',
        fmtFixed(median(analyze), 1),
        fmtFixed(percentile(analyze, 95), 1),
        fmtFixed(Math.max(...analyze), 1),
      ],
      [
        'cache miss µs',
        fmtFixed(median(total), 1),
        fmtFixed(percentile(total, 95), 1),
        fmtFixed(Math.max(...total), 1),
      ],
    ],
  ) + '\n\n',
);
process.stdout.write(
  textTable(['SessionRouter.route, plan cached', 'ns per request', 'bytes allocated'], routeRows) + '\n\n',
);
const verdict = hitUs <= HIT_TARGET_US ? 'ok' : 'OVER TARGET';
process.stdout.write(
  `${rows.length} statements, ${opts.iterations} runs each; very first parse+analyze after startup: ${fmtFixed(firstUs, 0)} µs\n` +
    `cache hit: ${fmtFixed(hitUs * 1000, 0)} ns per lookup over ${opts.lookups.toLocaleString('en-US')} lookups ` +
    `(target ≤ ${HIT_TARGET_US} µs: ${verdict})\n`,
);

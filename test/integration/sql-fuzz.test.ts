// The random-query differential fuzzer: the differential suite's servers and data (test/differential/setup.ts —
// one plain PostgreSQL as the reference, shardgate over 3 shards), and random SELECTs from
// test/differential/query-gen.ts run on both, in the simple protocol (parameters written as literals) or the
// extended one (parameters bound; some with binary results). About a third of the cases have a twin: the same
// statement with other values (query-gen.ts draws structure and values from two Rngs), run right after on the same
// connection — through one named prepared statement when the texts are equal — so plans cached by text or by
// statement meet other values. Each answer must match the reference's as the differential suite compares it (column
// names and types, command tag, rows — in order where the query's ORDER BY determines it, else what is determined:
// the sort keys, the multiset, the count), or the proxy must refuse the query with 0A000 for one of the known reasons
// below (their share is printed). Both failing with the same SQLSTATE is a match too.
//
// CI runs a fixed seed and count (about 30 s of queries, 20 s of loading). Long runs: SHARDGATE_SQLFUZZ_SEED=<n>
// SHARDGATE_SQLFUZZ_CASES=<n>; one case again: SHARDGATE_SQLFUZZ_ONLY=<case number>; more failures printed:
// SHARDGATE_SQLFUZZ_SHOWN=<n>. A failure prints the seed, the case number, the SQL, its parameters and the protocol.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inline } from '../differential/corpus.js';
import { generateDataset, Rng } from '../differential/dataset.js';
import { generateQuery, valuePools, type Compare, type FuzzQuery } from '../differential/query-gen.js';
import {
  differenceBy,
  exec,
  missingFrom,
  rowDifference,
  show,
  startDifferential,
  type Answer,
  type DifferentialServers,
  type Outcome,
} from '../differential/setup.js';

const SEED = Number(process.env.SHARDGATE_SQLFUZZ_SEED ?? 20_261_207);
const CASES = Number(process.env.SHARDGATE_SQLFUZZ_CASES ?? 600);
const ONLY = process.env.SHARDGATE_SQLFUZZ_ONLY;
/** Failures printed in full (all are counted). */
const SHOWN_FAILURES = Number(process.env.SHARDGATE_SQLFUZZ_SHOWN ?? 15);

/**
 * 0A000 refusals the fuzzer accepts: shapes the router refuses by design (corpus.ts has a `rejected` entry for each).
 * Any other refusal of a generated query is a failure.
 */
const KNOWN_REFUSALS: readonly { reason: RegExp; why: string }[] = [
  {
    reason: /^(min|max|bool_and|bool_or)\(\) under a cast cannot be merged across shards/,
    why: 'min / max / bool_and / bool_or under a cast across shards',
  },
  {
    reason: /^ORDER BY a value of type OID \d+ across shards cannot be merged/,
    why: 'ORDER BY an array (array_agg) across shards',
  },
];

const NUMERIC_OID = 1700;

const dataset = generateDataset();
const pools = valuePools(dataset);
let env: DifferentialServers;

beforeAll(async () => {
  env = await startDifferential(dataset);
}, 90_000);

afterAll(async () => {
  await env?.close();
});

type Protocol = 'simple' | 'extended' | 'extended, binary results';

interface Case {
  n: number;
  /** 0, or 1 for the twin: the same statement with other values, run right after on the same connection. */
  variant: number;
  query: FuzzQuery;
  protocol: Protocol;
  /** Case `n` has a twin (variant 1). */
  hasTwin: boolean;
  /** The named prepared statement both variants run (extended protocol, the same text), or undefined. */
  prepared: string | undefined;
}

const mix = (seed: number, n: number, salt: number): number =>
  (Math.imul(seed, 0x9e3779b1) ^ Math.imul(n + 1, 0x85ebca6b) ^ Math.imul(salt + 1, 0xc2b2ae35)) >>> 0;

/** Variant `variant` of case `n` of `seed`: its own Rngs, so any case can be generated again alone. */
function fuzzCase(seed: number, n: number, variant: number): Case {
  const rng = new Rng(mix(seed, n, 0));
  const query = generateQuery(rng, new Rng(mix(seed, n, variant + 1)), pools);
  const r = rng.next();
  const protocol: Protocol = r < 0.45 ? 'simple' : r < 0.9 ? 'extended' : 'extended, binary results';
  const hasTwin = rng.chance(0.3);
  const prepared = hasTwin && protocol !== 'simple' && rng.chance(0.7) ? `fz${n}` : undefined;
  return { n, variant, query, protocol, hasTwin, prepared };
}

async function run(c: Case, onProxy: boolean, prepared: string | undefined): Promise<Outcome> {
  const client = onProxy ? env.via : env.ref;
  const { sql, params } = c.query;
  if (c.protocol === 'simple') return exec(client, inline(sql, params), undefined);
  return exec(client, sql, params, prepared, c.protocol !== 'extended', true);
}

/** The rows compared as far as the query determines them. */
function rowsBy(compare: Compare): (e: Answer, a: Answer) => string | null {
  switch (compare.kind) {
    case 'ordered':
      return (e, a) => rowDifference(e, a, false);
    case 'multiset':
      return (e, a) => rowDifference(e, a, true);
    case 'count':
      return (e, a) =>
        e.rows.length === a.rows.length ? null : `expected ${e.rows.length} rows, actual ${a.rows.length}`;
    case 'keys':
      return (e, a) => {
        // Tied numerics are equal values, not equal texts (avg gives 1.50 and 1.5000 for equal averages): compared
        // without trailing zeros.
        const keys = (rows: readonly (string | null)[][]): (string | null)[][] =>
          rows.map((r) =>
            compare.positions.map((p) =>
              e.types[p] === NUMERIC_OID
                ? (r[p]?.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '') ?? null)
                : r[p],
            ),
          );
        const [ek, ak] = [keys(e.rows), keys(a.rows)];
        for (let i = 0; i < Math.max(ek.length, ak.length); i++) {
          if (JSON.stringify(ek[i]) !== JSON.stringify(ak[i]))
            return `expected ${ek.length} rows, actual ${ak.length}; sort keys differ at row ${i}: expected ${show(ek[i])}, actual ${show(ak[i])}`;
        }
        if (compare.isCut) return null;
        const missing = missingFrom(e.rows, a.rows);
        const extra = missingFrom(a.rows, e.rows);
        if (missing.length === 0 && extra.length === 0) return null;
        return `missing through the proxy: ${missing.map(show).join(' ') || '-'}; extra: ${extra.map(show).join(' ') || '-'}`;
      };
  }
}

function describeCase(seed: number, c: Case): string {
  const params = c.query.params.length === 0 ? '-' : JSON.stringify(c.query.params);
  const simple = c.protocol === 'simple' ? `\nas sent: ${inline(c.query.sql, c.query.params)}` : '';
  const twin = c.variant > 0 ? ' (the twin: run right after variant 0 with its values)' : '';
  const prepared = c.prepared !== undefined ? `, prepared statement "${c.prepared}"` : '';
  return (
    `seed ${seed}, case ${c.n} variant ${c.variant}${twin} (SHARDGATE_SQLFUZZ_SEED=${seed} SHARDGATE_SQLFUZZ_ONLY=${c.n}), ` +
    `shape ${c.query.shape}, compared: ${c.query.compare.kind}\nSQL: ${c.query.sql}\nparams: ${params}\n` +
    `protocol: ${c.protocol}${prepared}${simple}`
  );
}

/** What the proxy did with one case: answered alike, refused (known reason), or a failure. */
type Verdict = { kind: 'same' } | { kind: 'refused'; why: string } | { kind: 'failed'; diff: string };

function verdict(expected: Outcome, actual: Outcome, compare: Compare): Verdict {
  if (!expected.ok) {
    if (!actual.ok && actual.code === expected.code) return { kind: 'same' };
    return {
      kind: 'failed',
      diff: `the reference failed (a generator bug?): ${expected.code ?? '-'} ${expected.message}`,
    };
  }
  if (!actual.ok && actual.code === '0A000') {
    const known = KNOWN_REFUSALS.find((k) => k.reason.test(actual.message));
    if (known !== undefined) return { kind: 'refused', why: known.why };
    return {
      kind: 'failed',
      diff: `refused with 0A000 for a reason not known to be a gap: ${actual.message}`,
    };
  }
  const diff = differenceBy(expected, actual, rowsBy(compare));
  return diff === null ? { kind: 'same' } : { kind: 'failed', diff };
}

describe('SQL fuzzer: random SELECTs, one PostgreSQL vs shardgate over 3 shards', () => {
  it(`${ONLY !== undefined ? `case ${ONLY}` : `${CASES} cases`} of seed ${SEED} answer as the reference does, or are refused with 0A000`, async () => {
    const numbers = ONLY !== undefined ? [Number(ONLY)] : Array.from({ length: CASES }, (_, i) => i);
    const failures: string[] = [];
    const refusals = new Map<string, number>();
    const shapes = new Map<string, number>();
    let refused = 0;
    const started = Date.now();
    let runs = 0;
    for (const n of numbers) {
      const first = fuzzCase(SEED, n, 0);
      const cases = first.hasTwin ? [first, fuzzCase(SEED, n, 1)] : [first];
      // Both variants through one named statement only when their texts are the same (values all parameters).
      const prepared = cases.every((c) => c.query.sql === first.query.sql) ? first.prepared : undefined;
      for (const c of cases) {
        runs++;
        const shape = c.query.shape.split('/')[1];
        shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
        const [expected, actual] = await Promise.all([run(c, false, prepared), run(c, true, prepared)]);
        if (!actual.ok && (actual.code === undefined || actual.code === 'XX000')) await env.reconnect();
        const v = verdict(expected, actual, c.query.compare);
        if (v.kind === 'refused') {
          refused++;
          refusals.set(v.why, (refusals.get(v.why) ?? 0) + 1);
        } else if (v.kind === 'failed') failures.push(`${v.diff}\n${describeCase(SEED, { ...c, prepared })}`);
      }
    }
    const share = (k: number): string => `${((100 * k) / runs).toFixed(1)}%`;
    console.log(
      [
        `sql-fuzz: seed ${SEED}, ${numbers.length} cases (${runs} queries with the twins) in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s: ${runs - refused - failures.length} same, ` +
          `${refused} refused with 0A000 (${share(refused)}), ${failures.length} failed`,
        `shapes: ${[...shapes].map(([s, k]) => `${s} ${k}`).join(', ')}`,
        ...[...refusals].map(([why, k]) => `refused ${k}× (${share(k)}): ${why}`),
      ].join('\n'),
    );
    if (failures.length > 0) {
      const shown = failures.slice(0, SHOWN_FAILURES).join('\n\n');
      expect.fail(`${failures.length} of ${runs} queries failed (first ${SHOWN_FAILURES} below)\n\n${shown}`);
    }
  }, 600_000);
});

// Protocol fuzzing compared with PostgreSQL itself: generated frontend message sequences (after login) sent to
// PostgreSQL directly and through the proxy (transaction mode, session mode, a 2-shard database); the replies must
// match (test/helpers/protocol-fuzz/compare.ts says what is compared and what legitimately differs), the proxy must
// answer everything PostgreSQL answers (a hang is a failure), and keep serving a fresh client after every case.
// A fixed seed for CI; a long run: SHARDGATE_FUZZ_SEED=<n> SHARDGATE_FUZZ_CASES=5000 npx vitest run
// test/integration/protocol-fuzz.test.ts (README.md, "Development").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFuzzPeers, type FuzzPeers } from '../helpers/protocol-fuzz/targets.js';
import { knownDifference } from '../helpers/protocol-fuzz/known.js';
import { describeFailure, runFuzz, type FuzzFailure } from '../helpers/protocol-fuzz/run.js';

function isKnown(f: FuzzFailure): boolean {
  return knownDifference(f.fuzzCase.seed, f.fuzzCase.index, f.target) !== undefined;
}

const SEED = Number(process.env.SHARDGATE_FUZZ_SEED ?? 20261207);
const CASES = Number(process.env.SHARDGATE_FUZZ_CASES ?? 50);
/** The first case number (SHARDGATE_FUZZ_FROM=29 SHARDGATE_FUZZ_CASES=1 replays case 29 alone). */
const FROM = Number(process.env.SHARDGATE_FUZZ_FROM ?? 0);
/** Only these targets (comma-separated names), e.g. SHARDGATE_FUZZ_TARGETS=transaction. */
const ONLY = process.env.SHARDGATE_FUZZ_TARGETS?.split(',');
/** Failures printed in full (the rest are counted). */
const PRINTED = Number(process.env.SHARDGATE_FUZZ_PRINT ?? 20);

describe('protocol fuzzing compared with PostgreSQL', () => {
  let peers: FuzzPeers;

  beforeAll(async () => {
    peers = await startFuzzPeers();
  });

  afterAll(async () => {
    await peers?.stop();
  });

  it(
    `answers ${CASES} generated cases of seed ${SEED} as PostgreSQL does`,
    { timeout: 60 * 60_000 },
    async () => {
      let printed = 0;
      const run = await runFuzz({
        seed: SEED,
        count: CASES,
        from: FROM,
        referencePort: peers.referencePort,
        targets: peers.targets.filter((t) => ONLY === undefined || ONLY.includes(t.name)),
        onFailure: (failure) => {
          if (isKnown(failure)) return;
          if (printed++ < PRINTED) console.error(describeFailure(failure));
        },
      });
      const known = run.failures.filter(isKnown);
      if (known.length > 0)
        console.error(`${known.length} known differences (test/helpers/protocol-fuzz/known.ts)`);
      const summary = run.failures
        .filter((f) => !isKnown(f))
        .map((f) => `seed ${f.fuzzCase.seed} case ${f.fuzzCase.index} (${f.target})`);
      expect(summary, `${summary.length} of ${run.compared} comparisons differ (not known)`).toEqual([]);
    },
  );
});

// Benchmark (not a test): the cost of the atomic-visibility fence (issue 14). The bank workload (4 writers moving
// money between accounts on 2 shards with 2PC, 2 readers summing every balance; test/fault/bank-workload.ts) through
// a shardgate process with atomic_visibility = false and one with = true, in the same run, rounds interleaved;
// reports transfers/s, reads/s, torn reads and the ratios (target: >= 0.8x of the unfenced numbers for both).
// Usage: npx tsx bench/atomic-visibility.ts [--duration 10] [--rounds 3] [--docs yes]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { testServers } from '../test/helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS } from '../test/helpers/proxy.js';
import { ProxyProcess } from '../test/helpers/proxy-process.js';
import { directShardClients } from '../test/helpers/sharding.js';
import {
  BANK_SCHEMA,
  BANK_SHARDING_TOML,
  bankAccounts,
  INITIAL_BALANCE,
  newBankStats,
  runBank,
} from '../test/fault/bank-workload.js';
import { parseArgs } from './lib/args.js';
import { markdownTable, textTable, writeDocSection } from './lib/report.js';

const SCRIPT = 'bench/atomic-visibility.ts';
const opts = parseArgs(SCRIPT, {
  duration: { default: 10, help: 'seconds per run' },
  rounds: { default: 3, help: 'runs of each mode, interleaved; the median of each is reported' },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
});
const ACCOUNTS_PER_SHARD = 50;
const root = path.resolve(import.meta.dirname, '..');

interface Run {
  transfersPerS: number;
  readsPerS: number;
  torn: number;
  failed: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const cluster = await testServers(2, APP_SERVER_OPTIONS);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bench-vis-'));
try {
  const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
  const direct = await directShardClients(cluster);
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
    await d.end();
  }
  const proxies = new Map<boolean, ProxyProcess>();
  for (const isFenced of [false, true]) {
    const sub = path.join(dir, isFenced ? 'fenced' : 'open');
    fs.mkdirSync(sub);
    const proxy = await ProxyProcess.create(cluster, {
      dir: sub,
      general:
        `two_phase_commit = true\ntwo_phase_commit_auto = true\ninstance_id = "bench${isFenced ? 1 : 0}"\n` +
        `two_phase_commit_wal_dir = "${path.join(sub, 'wal')}"\natomic_visibility = ${isFenced}`,
      extraPgdog: BANK_SHARDING_TOML(APP_DB),
    });
    await proxy.start();
    proxies.set(isFenced, proxy);
  }
  const runs = new Map<boolean, Run[]>([
    [false, []],
    [true, []],
  ]);
  for (let round = 0; round < opts.rounds; round++) {
    for (const isFenced of [false, true]) {
      const proxy = proxies.get(isFenced) as ProxyProcess;
      const stats = newBankStats();
      const t0 = Date.now();
      await runBank(
        {
          url: proxy.url,
          accounts,
          writers: 4,
          readers: 2,
          isRunning: () => Date.now() - t0 < opts.duration * 1000,
        },
        stats,
      );
      const s = (Date.now() - t0) / 1000;
      const run: Run = {
        transfersPerS: stats.transfers / s,
        readsPerS: stats.reads / s,
        torn: stats.inconsistentReads,
        failed: stats.failedTransfers + stats.failedReads,
      };
      runs.get(isFenced)?.push(run);
      console.log(
        `round ${round + 1} ${isFenced ? 'fenced' : 'open  '}: ${run.transfersPerS.toFixed(0)} transfers/s, ` +
          `${run.readsPerS.toFixed(0)} reads/s, ${run.torn} torn, ${run.failed} failed`,
      );
    }
  }
  // Where fenced readers wait: the fenced proxy's fence counters (SHOW STATS, summed over shards), against its reads.
  const fencedReads = (runs.get(true) as Run[]).reduce((a, r) => a + r.readsPerS * opts.duration, 0);
  const waits = await fenceWaits(proxies.get(true) as ProxyProcess);
  const waitLine =
    `fenced proxy, all rounds: ${waits.readerWaits} of ~${fencedReads.toFixed(0)} reads waited for a writer ` +
    `(${waits.readerWaitMs.toFixed(0)} ms in all, ${(waits.readerWaitMs / Math.max(1, waits.readerWaits)).toFixed(1)} ms ` +
    `each); ${waits.writerWaits} commits waited for readers (${waits.writerWaitMs.toFixed(0)} ms in all); ` +
    `${waits.timeouts} reader timeouts`;
  console.log(waitLine);
  for (const p of proxies.values()) await p.stop();
  const summary = (isFenced: boolean) => {
    const list = runs.get(isFenced) as Run[];
    return {
      transfers: median(list.map((r) => r.transfersPerS)),
      reads: median(list.map((r) => r.readsPerS)),
      torn: list.reduce((a, r) => a + r.torn, 0),
      tornShare:
        list.reduce((a, r) => a + r.torn, 0) /
        Math.max(
          1,
          list.reduce((a, r) => a + r.readsPerS * opts.duration, 0),
        ),
    };
  };
  const open = summary(false);
  const fenced = summary(true);
  const headers = ['atomic_visibility', 'transfers/s', 'reads/s', 'torn reads (all rounds)'];
  const rows = [
    [
      'false',
      open.transfers.toFixed(0),
      open.reads.toFixed(0),
      `${open.torn} (${(open.tornShare * 100).toFixed(1)} %)`,
    ],
    ['true', fenced.transfers.toFixed(0), fenced.reads.toFixed(0), String(fenced.torn)],
    [
      'ratio',
      `${(fenced.transfers / open.transfers).toFixed(2)}x`,
      `${(fenced.reads / open.reads).toFixed(2)}x`,
      '',
    ],
  ];
  console.log(textTable(headers, rows));
  if (opts.docs === 'yes') {
    const when = new Date().toISOString().slice(0, 10);
    await writeDocSection(
      path.join(root, 'docs/benchmarks.md'),
      'atomic-visibility',
      `## Atomic visibility: the fence's cost (${when})\n\n` +
        `\`npx tsx ${SCRIPT} --duration ${opts.duration} --rounds ${opts.rounds} --docs yes\`: the bank workload ` +
        '(4 writers: 2-shard transfers with 2PC; 2 readers: `SELECT sum(balance) FROM accounts` over both shards) ' +
        'through two shardgate processes, `atomic_visibility = false` and `true`, rounds interleaved in one run; ' +
        'medians of the rounds. Target: the fence keeps >= 0.8x of both rates.\n\n' +
        markdownTable(headers, rows) +
        `\n\n${waitLine} (load average ${os
          .loadavg()
          .map((x) => x.toFixed(1))
          .join(' / ')} at the end).\n`,
    );
  }
} finally {
  await cluster.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The fence counters of `proxy`'s SHOW STATS, summed over its shards. */
async function fenceWaits(proxy: ProxyProcess): Promise<{
  readerWaits: number;
  readerWaitMs: number;
  writerWaits: number;
  writerWaitMs: number;
  timeouts: number;
}> {
  const admin = new pg.Client({ connectionString: `postgres://admin:admin@127.0.0.1:${proxy.port}/admin` });
  await admin.connect();
  try {
    const rows = (await admin.query<Record<string, string>>('SHOW STATS')).rows.filter(
      (r) => r.database === APP_DB,
    );
    const sum = (col: string): number => rows.reduce((a, r) => a + Number(r[col] ?? 0), 0);
    return {
      readerWaits: sum('fence_reader_waits'),
      readerWaitMs: sum('fence_reader_wait_time'),
      writerWaits: sum('fence_writer_waits'),
      writerWaitMs: sum('fence_writer_wait_time'),
      timeouts: sum('fence_timeouts'),
    };
  } finally {
    await admin.end();
  }
}

// The README's 5-minute tour, run as a newcomer runs it: `shardgate demo` as a child process, then every ```sql block
// of the tour with real psql on the connection its `<!-- tour:… -->` marker names (proxy, shard N, each-shard, admin),
// comparing psql's output (stdout and stderr, interleaved as on a terminal) with the ```text block shown after it.
// A block marked `<!-- tour:skip-until-admin -->` is skipped until the admin console exists.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgTool } from '../helpers/clients/pg-tools.js';

const root = path.resolve(import.meta.dirname, '../..');
const psqlPath = findPgTool('psql');
const TOUR_HEADING = '## A 5-minute tour with psql';

type Target =
  { kind: 'proxy' } | { kind: 'shard'; shard: number } | { kind: 'each-shard' } | { kind: 'admin' };

interface TourStep {
  /** 1-based line of the ```sql fence in README.md. */
  line: number;
  target: Target;
  isSkippedUntilAdmin: boolean;
  sql: string;
  /** The ```text block after the SQL: psql's output; null when the README shows none. */
  expected: string | null;
}

interface Tour {
  text: string;
  /** The first ```text block, before any SQL: what the demo prints. */
  demoOutput: string | null;
  steps: TourStep[];
}

function parseTarget(marker: string, line: number): Target {
  if (marker === 'proxy' || marker === 'each-shard' || marker === 'admin') return { kind: marker };
  const shard = /^shard (\d+)$/.exec(marker);
  if (shard !== null) return { kind: 'shard', shard: Number(shard[1]) };
  throw new Error(`README.md:${line}: unknown tour marker "tour:${marker}"`);
}

/** The tour section of README.md, cut into steps. Each ```sql block must follow its markers (blank lines between). */
function parseTour(readme: string): Tour {
  const lines = readme.split('\n');
  const start = lines.indexOf(TOUR_HEADING);
  if (start < 0) throw new Error(`README.md has no "${TOUR_HEADING}" section`);
  const endOffset = lines.slice(start + 1).findIndex((l) => l.startsWith('## '));
  const end = endOffset < 0 ? lines.length : start + 1 + endOffset;
  const steps: TourStep[] = [];
  let demoOutput: string | null = null;
  let markers: { text: string; line: number }[] = [];
  for (let i = start + 1; i < end; i++) {
    const line = lines[i];
    const marker = /^<!-- tour:(.+?) -->$/.exec(line.trim());
    if (marker !== null) {
      markers.push({ text: marker[1], line: i + 1 });
      continue;
    }
    if (line.trim() === '') continue;
    const fence = /^```(\w*)$/.exec(line);
    if (fence === null) {
      if (markers.length > 0)
        throw new Error(`README.md:${markers[0].line}: a tour marker not followed by SQL`);
      continue;
    }
    const close = lines.indexOf('```', i + 1);
    if (close < 0 || close >= end) throw new Error(`README.md:${i + 1}: unclosed code block`);
    const body = lines.slice(i + 1, close).join('\n');
    const language = fence[1];
    if (language === 'sql') {
      const isSkippedUntilAdmin = markers.some((m) => m.text === 'skip-until-admin');
      const targets = markers.filter((m) => m.text !== 'skip-until-admin');
      if (targets.length !== 1)
        throw new Error(`README.md:${i + 1}: a tour SQL block needs exactly one <!-- tour:TARGET --> marker`);
      steps.push({
        line: i + 1,
        target: parseTarget(targets[0].text, targets[0].line),
        isSkippedUntilAdmin,
        sql: body + '\n',
        expected: null,
      });
    } else if (markers.length > 0) {
      throw new Error(`README.md:${markers[0].line}: a tour marker must precede a \`\`\`sql block`);
    } else if (language === 'text') {
      const previous = steps[steps.length - 1];
      if (previous === undefined) demoOutput ??= body;
      else if (previous.expected === null) previous.expected = body;
    }
    markers = [];
    i = close;
  }
  return { text: lines.slice(start, end).join('\n'), demoOutput, steps };
}

/** As psql prints it, minus what varies or what a terminal does not show: line-end spaces, script line prefixes. */
function normalizeOutput(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/^psql:<stdin>:\d+: /, '').trimEnd())
    .join('\n')
    .trim();
}

/** Demo output with ports and temp paths blanked, for comparing with the README's sample. */
function normalizeDemoLine(line: string): string {
  return line
    .trim()
    .replace(/:\d+/g, ':PORT')
    .replace(/\/\S*\/(pgdog|users)\.toml/g, '/TMP/$1.toml');
}

function describeTarget(t: Target): string {
  return t.kind === 'shard' ? `shard ${t.shard}` : t.kind;
}

const tour = parseTour(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));

let workDir: string;
let demoOutput = '';
let proxyUrl = '';
let shardUrls: string[] = [];
let configPath = '';
let stopDemo: () => Promise<number | null> = async () => null;

/** psql -X URL with `sql` on stdin; stdout and stderr go to one file, so errors appear where a terminal shows them. */
function psql(url: string, sql: string): { code: number | null; output: string } {
  const outFile = path.join(workDir, 'psql.out');
  const fd = fs.openSync(outFile, 'w');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  try {
    const r = spawnSync(psqlPath as string, ['-X', url], {
      input: sql,
      stdio: ['pipe', fd, fd],
      env: { ...env, PGCONNECT_TIMEOUT: '10', PSQLRC: '/dev/null', LC_ALL: 'C' },
      timeout: 20_000,
    });
    return { code: r.status, output: fs.readFileSync(outFile, 'utf8') };
  } finally {
    fs.closeSync(fd);
  }
}

function urlsOf(target: Target): string[] {
  switch (target.kind) {
    case 'proxy':
      return [proxyUrl];
    case 'shard':
      return [shardUrls[target.shard]];
    case 'each-shard':
      return shardUrls;
    case 'admin': {
      // The admin URL the README gives, on the port this demo listens on.
      const given = /postgresql:\/\/admin:[^@"]+@[^"/]+\/\w+/.exec(tour.text)?.[0];
      if (given === undefined) throw new Error('the tour gives no admin psql URL');
      return [given.replace(/@[^/]+\//, `@${new URL(proxyUrl).host}/`)];
    }
  }
}

describe.skipIf(psqlPath === null)('README tour against `shardgate demo`', () => {
  beforeAll(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-tour-'));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'demo', '--port', '0'],
      { cwd: root },
    );
    child.stdout.on('data', (d: Buffer) => (demoOutput += d.toString()));
    child.stderr.on('data', (d: Buffer) => (demoOutput += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    stopDemo = async () => {
      child.kill('SIGTERM');
      return exited;
    };
    const deadline = Date.now() + 30_000;
    while (!demoOutput.includes('Press Ctrl-C') && child.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    proxyUrl = /psql "(postgresql:\/\/[^"]+)"/.exec(demoOutput)?.[1] ?? '';
    shardUrls = [...demoOutput.matchAll(/^ {2}shard (\d+): psql "(postgresql:\/\/[^"]+)"$/gm)]
      .sort((a, b) => Number(a[1]) - Number(b[1]))
      .map((m) => m[2]);
    configPath = /Config: (\S+pgdog\.toml)/.exec(demoOutput)?.[1] ?? '';
    if (proxyUrl === '' || shardUrls.length !== 2) throw new Error(`the demo did not start:\n${demoOutput}`);
  }, 60_000);

  afterAll(async () => {
    const code = await stopDemo();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    expect(code, demoOutput).toBe(0);
  });

  it('the README still starts with the two set-up commands', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(firstBlock).toMatch(/^npm ci && npm start\b/m);
    expect(firstBlock).toMatch(/^npm test\b/m);
    const scripts = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts;
    expect(scripts.start).toBe('node dist/cli.js demo');
  });

  it('the demo prints what the tour shows, and is configured as the tour says', () => {
    expect(tour.demoOutput).not.toBeNull();
    const printed = demoOutput.split('\n').map(normalizeDemoLine);
    for (const line of (tour.demoOutput ?? '').split('\n').filter((l) => l.trim() !== ''))
      expect(printed, `README line "${line}"`).toContain(normalizeDemoLine(line));

    const config = fs.readFileSync(configPath, 'utf8');
    expect(config).toMatch(/^two_phase_commit = true$/m);
    expect(config).toMatch(/name = "users"\ncolumn = "id"/);
    expect(config).toMatch(/name = "orders"\ncolumn = "user_id"/);
    expect(tour.text).toContain('`users` by `id` and `orders` by `user_id`');
    expect(tour.text).toContain('(`two_phase_commit = true`)');
  });

  it('has steps on the proxy, on each shard and across shards', () => {
    const kinds = tour.steps.map((s) => describeTarget(s.target));
    expect(kinds).toEqual(expect.arrayContaining(['proxy', 'shard 0', 'shard 1', 'each-shard', 'admin']));
    expect(tour.steps.filter((s) => s.sql.includes('COMMIT;')).length).toBeGreaterThanOrEqual(2);
  });

  for (const step of tour.steps) {
    const title = `README.md:${step.line} on ${describeTarget(step.target)}: ${step.sql.trim().split('\n')[0]}`;
    it.skipIf(step.isSkippedUntilAdmin)(title, () => {
      for (const url of urlsOf(step.target)) {
        const r = psql(url, step.sql);
        expect(r.code, r.output).toBe(0);
        if (step.expected === null) expect(r.output).not.toMatch(/^(psql:\S+ )?(ERROR|FATAL):/m);
        else expect(normalizeOutput(r.output), url).toBe(normalizeOutput(step.expected));
      }
    });
  }
});

// psql through shardgate: a script with DDL, inserts, \copy in and out, meta-commands; errors and exit codes;
// Ctrl-C cancelling a running query — in transaction and session mode.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { findPgTool, libpqEnv, runTool, type ToolResult } from '../helpers/clients/pg-tools.js';

const psqlPath = findPgTool('psql');
const CSV_ROWS = 1000;

let cluster: PgCluster;
let txProxy: TestProxy;
let sessionProxy: TestProxy;
let workDir: string;

/** Resolves once a backend runs `sql` (polled through the proxy); fails after 15 s. */
async function waitForActiveQuery(proxy: TestProxy, sql: string): Promise<void> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
  });
  await client.connect();
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query = $1",
        [sql],
      );
      if (res.rows[0].n > 0) return;
      if (Date.now() > deadline) throw new Error(`query never became active: ${sql}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.end();
  }
}

function psql(
  proxy: TestProxy,
  args: string[],
  opts: { onSpawn?: (pid: number) => void } = {},
): Promise<ToolResult> {
  return runTool(psqlPath as string, ['-X', ...args], {
    env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
    cwd: workDir,
    timeoutMs: 20_000,
    onSpawn: opts.onSpawn,
  });
}

interface Fruit {
  id: number;
  name: string;
  price: number | null;
}

/** Rows for \\copy: names with commas, quotes and newlines, and one NULL price. */
const CSV_FRUITS: Fruit[] = Array.from({ length: CSV_ROWS }, (_, k) => {
  const id = 10 + k;
  if (k === 0) return { id, name: 'kiwi, gold', price: null };
  if (k === 1) return { id, name: 'say "cheese"', price: 3.5 };
  if (k === 2) return { id, name: 'two\nlines', price: 0.01 };
  return { id, name: `fruit ${id}`, price: (id % 100) + 0.5 };
});

/** PostgreSQL's CSV format: quote a field holding a delimiter, quote or newline; NULL is empty. */
function csvField(value: string | null): string {
  if (value === null) return '';
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function toCsv(rows: Fruit[], priceText: (p: number) => string): string {
  const lines = rows.map((r) =>
    [String(r.id), csvField(r.name), csvField(r.price === null ? null : priceText(r.price))].join(','),
  );
  return `id,name,price\n${lines.join('\n')}\n`;
}

describe.skipIf(psqlPath === null)('psql', () => {
  beforeAll(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-psql-'));
    fs.writeFileSync(path.join(workDir, 'in.csv'), toCsv(CSV_FRUITS, String));
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    [txProxy, sessionProxy] = await Promise.all([
      startTestProxy(cluster),
      startTestProxy(cluster, { general: 'pooler_mode = "session"' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([txProxy, sessionProxy].map((p) => p?.close()));
    await cluster?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  describe.each([
    ['transaction', () => txProxy],
    ['session', () => sessionProxy],
  ] as const)('%s mode', (mode, proxyOf) => {
    const table = `fruits_${mode}`;

    it('runs a script: DDL, inserts, \\copy in and out, \\dt and \\d', async () => {
      const outCsv = `out_${mode}.csv`;
      const script = [
        `CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL, price numeric(6,2));`,
        `INSERT INTO ${table} VALUES (1, 'apple', 1.10), (2, 'banana', 0.25);`,
        `\\copy ${table} FROM 'in.csv' WITH (FORMAT csv, HEADER true)`,
        `SELECT count(*) AS n, count(price) AS priced, max(id) AS top FROM ${table};`,
        `BEGIN;`,
        `UPDATE ${table} SET price = price * 2 WHERE id <= 2;`,
        `ROLLBACK;`,
        `\\copy (SELECT id, name, price FROM ${table} ORDER BY id) TO '${outCsv}' WITH (FORMAT csv, HEADER true)`,
        `\\dt`,
        `\\d ${table}`,
        '',
      ].join('\n');
      fs.writeFileSync(path.join(workDir, `script_${mode}.sql`), script);
      const res = await psql(proxyOf(), ['-v', 'ON_ERROR_STOP=1', '-f', `script_${mode}.sql`]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(`COPY ${CSV_ROWS}`);
      expect(res.stdout).toMatch(
        new RegExp(`\\n\\s*${CSV_ROWS + 2}\\s*\\|\\s*${CSV_ROWS + 1}\\s*\\|\\s*${CSV_ROWS + 9}\\n`),
      );
      expect(res.stdout).toContain(`COPY ${CSV_ROWS + 2}`);
      // \dt
      expect(res.stdout).toMatch(
        new RegExp(`public\\s*\\|\\s*${table}\\s*\\|\\s*table\\s*\\|\\s*${APP_USER}`),
      );
      // \d table
      expect(res.stdout).toContain(`Table "public.${table}"`);
      expect(res.stdout).toMatch(/\bid\s*\|\s*integer\s*\|\s*\|\s*not null/);
      expect(res.stdout).toMatch(/\bprice\s*\|\s*numeric\(6,2\)/);
      expect(res.stdout).toContain(`"${table}_pkey" PRIMARY KEY, btree (id)`);

      const out = fs.readFileSync(path.join(workDir, outCsv), 'utf8');
      const allRows = [
        { id: 1, name: 'apple', price: 1.1 },
        { id: 2, name: 'banana', price: 0.25 },
        ...CSV_FRUITS,
      ];
      const expected = toCsv(allRows, (p) => p.toFixed(2));
      expect(out.split('\n').length).toBe(expected.split('\n').length);
      expect(out).toBe(expected);
    });

    it("exits non-zero on 'select 1/0' with the server's error text", async () => {
      const res = await psql(proxyOf(), ['-c', 'select 1/0']);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('ERROR:  division by zero');
      expect(res.stdout).toBe('');
    });

    it('stops a script at the first error with ON_ERROR_STOP (exit 3), leaving later statements unrun', async () => {
      const marker = `marker_${mode}`;
      const script = `CREATE TABLE ${marker} (x int);\nINSERT INTO ${marker} VALUES (1);\nSELECT nope FROM ${marker};\nINSERT INTO ${marker} VALUES (2);\n`;
      fs.writeFileSync(path.join(workDir, `fail_${mode}.sql`), script);
      const res = await psql(proxyOf(), ['-v', 'ON_ERROR_STOP=1', '-f', `fail_${mode}.sql`]);
      expect(res.code).toBe(3);
      expect(res.stderr).toMatch(/ERROR: {2}column "nope" does not exist/);
      const check = await psql(proxyOf(), ['-At', '-c', `SELECT string_agg(x::text, ',') FROM ${marker}`]);
      expect(check.code).toBe(0);
      expect(check.stdout.trim()).toBe('1');
    });

    it('cancels a running query on SIGINT (psql sends a CancelRequest)', async () => {
      let pid = 0;
      const sql = `select pg_sleep(10) /* sigint ${mode} */`;
      const running = psql(proxyOf(), ['-c', sql], { onSpawn: (p) => (pid = p) });
      // Signal only once the query runs on the server: a SIGINT before psql sent it is not a cancel (under load,
      // psql can take over a second just to start and connect).
      await waitForActiveQuery(proxyOf(), sql);
      expect(pid).toBeGreaterThan(0);
      const signalled = Date.now();
      process.kill(pid, 'SIGINT');
      const res = await running;
      expect(res.stderr).toContain('ERROR:  canceling statement due to user request');
      expect(res.code).toBe(1);
      // Without the cancel psql would wait for the rest of the 10 s sleep.
      expect(Date.now() - signalled).toBeLessThan(5_000);
    });
  });
});

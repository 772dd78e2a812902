// `shardgate demo` as a newcomer runs it (what `npm start` does): two throwaway shards and the proxy, a working
// psql URL, and SIGTERM removing everything — twice in a row.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

async function runDemoOnce(): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'demo', '--port', '0'],
    {
      cwd: root,
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let configDir = '';
  try {
    const deadline = Date.now() + 30_000;
    while (!/psql "postgresql:\/\/[^"]+"/.test(out) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const url = /psql "(postgresql:\/\/[^"]+)"/.exec(out)?.[1];
    expect(url, out).toBeDefined();
    configDir = path.dirname(/Config: (\S+pgdog\.toml)/.exec(out)?.[1] ?? '');
    expect(fs.existsSync(path.join(configDir, 'pgdog.toml'))).toBe(true);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const r = await client.query("select current_setting('max_prepared_transactions')::int as mpt");
    expect(r.rows[0].mpt).toBeGreaterThan(0);
    await client.end();
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(fs.existsSync(configDir), 'the demo removes its files on exit').toBe(false);
}

describe('shardgate demo', () => {
  it('starts shards and the proxy, serves psql-style clients, and cleans up on SIGTERM (twice)', async () => {
    await runDemoOnce();
    await runDemoOnce();
  }, 90_000);
});

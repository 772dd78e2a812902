// The `shardgate` command as a user runs it: --help, check-config on good and bad files, and the proxy as a
// child process in front of a real PostgreSQL server, stopped by SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_PASSWORD, APP_SERVER_OPTIONS, APP_USER } from '../helpers/proxy.js';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { freePort } from '../../src/testing/free-port.js';

const root = path.resolve(import.meta.dirname, '../..');
const cli = ['--import', 'tsx', path.join(root, 'src/cli.ts')];

function run(args: string[]) {
  const r = spawnSync(process.execPath, [...cli, ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeConfig(pgdog: string, users: string): { config: string; users: string } {
  const c = path.join(dir, `pgdog-${Math.random().toString(36).slice(2)}.toml`);
  const u = path.join(dir, `users-${Math.random().toString(36).slice(2)}.toml`);
  fs.writeFileSync(c, pgdog);
  fs.writeFileSync(u, users);
  return { config: c, users: u };
}

describe('shardgate CLI', () => {
  it('--help explains the commands and options', () => {
    const r = run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--config');
    expect(r.stdout).toContain('--users');
    expect(r.stdout).toContain('check-config');
    expect(r.stdout).toContain('demo');
  });

  it('check-config prints the effective config of a valid pair', () => {
    const r = run([
      'check-config',
      '--config',
      path.join(root, 'config/2-shards/pgdog.toml'),
      '--users',
      path.join(root, 'config/2-shards/users.toml'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/port = 6432/);
    expect(r.stdout).toMatch(/shard = 1/);
    expect(r.stdout).not.toMatch(/password = "(?!\[redacted\])/);
  });

  it('check-config refuses a wrong type with one line naming file and key', () => {
    const f = writeConfig(
      '[general]\nport = "6432"\n[[databases]]\nname = "x"\nhost = "127.0.0.1"\n',
      '[[users]]\nname = "u"\ndatabase = "x"\npassword = "p"\n',
    );
    const r = run(['check-config', '--config', f.config, '--users', f.users]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(path.basename(f.config));
    expect(lines[0]).toContain('general.port');
  });

  it('refuses to start on a missing file, naming it', () => {
    const r = run(['--config', path.join(dir, 'nope.toml'), '--users', path.join(dir, 'nope-users.toml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nope.toml');
  });

  describe('running the proxy', () => {
    let cluster: PgCluster;
    beforeAll(async () => {
      cluster = await testServers(1, APP_SERVER_OPTIONS);
    }, 60_000);
    afterAll(async () => cluster?.stop());

    it('serves clients, then stops cleanly on SIGTERM', async () => {
      const s = cluster.servers[0];
      const port = await freePort();
      const f = writeConfig(
        `[general]\nhost = "127.0.0.1"\nport = ${port}\n[admin]\npassword = "a"\n[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\n`,
        `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${APP_PASSWORD}"\n`,
      );
      const child = spawn(process.execPath, [...cli, '--config', f.config, '--users', f.users], {
        cwd: root,
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        for (let i = 0; i < 100 && !out.includes('shardgate listening'); i++)
          await new Promise((r) => setTimeout(r, 100));
        expect(out).toContain('shardgate listening');
        const client = new pg.Client({
          host: '127.0.0.1',
          port,
          user: APP_USER,
          password: APP_PASSWORD,
          database: APP_DB,
        });
        await client.connect();
        const r = await client.query('select 40 + 2 as answer');
        expect(r.rows[0].answer).toBe(42);
        await client.end();
        // Logs are JSON lines by default and never contain the password. The child writes them asynchronously: on
        // a busy machine the line can arrive after the query's answer.
        for (let i = 0; i < 50 && !out.includes('client logged in'); i++)
          await new Promise((r) => setTimeout(r, 100));
        const line = out.split('\n').find((l) => l.includes('client logged in'));
        expect(line && JSON.parse(line).user).toBe(APP_USER);
        expect(out).not.toContain(APP_PASSWORD);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
    }, 30_000);
  });
});

// The Docker files, checked by reading them (no Docker engine runs here): the image's entry command is a CLI
// invocation src/cli.ts really accepts, its health check works, the example configuration passes check-config, and
// docker-compose.example.yml mounts what the image reads, keeps the decision log on a volume and gives every shard
// prepared transactions.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const CONFIG_DIR = '/etc/shardgate';

function read(file: string): string {
  return fs.readFileSync(path.join(root, file), 'utf8');
}

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// --- Dockerfile --------------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions of each stage (continuation lines joined, comments dropped). */
function dockerStages(text: string): Instruction[][] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: Instruction[][] = [];
  for (const line of lines.map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`Dockerfile: cannot read "${line}"`);
    if (m[1] === 'FROM') stages.push([]);
    stages[stages.length - 1].push({ keyword: m[1], args: m[2].trim() });
  }
  return stages;
}

function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`not the exec form: ${args}`);
  return parsed;
}

/** Long options (and whether they take a value) and command names of a commander --help text. */
function helpOf(text: string): { options: Map<string, boolean>; commands: Set<string> } {
  const options = new Map<string, boolean>();
  for (const m of text.matchAll(/^\s+(?:-\w, )?(--[\w-]+)( <[^>]+>)?/gm))
    options.set(m[1], m[2] !== undefined);
  const commandsPart = text.split(/^Commands:$/m)[1] ?? '';
  const commands = new Set([...commandsPart.matchAll(/^ {2}([\w-]+)/gm)].map((m) => m[1]));
  return { options, commands };
}

// --- docker-compose.example.yml, read as text (a YAML-free reading of the few things checked) ------------------------

/** The lines of a top-level key's block, or of a service's block. */
function yamlBlock(text: string, key: string, indent: number): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^ {${indent}}${key}:( &[\\w-]+)?$`).test(l));
  if (start < 0) return '';
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && !line.startsWith(' '.repeat(indent + 1))) break;
    body.push(line);
  }
  return body.join('\n');
}

function service(compose: string, name: string): string {
  const own = yamlBlock(yamlBlock(compose, 'services', 0), name, 2);
  // `<<: *anchor` merges an anchored block (one level, as this file uses it).
  const merged = [...own.matchAll(/<<: \*([\w-]+)/g)].map((m) => {
    const anchored = new RegExp(`^([\\w-]+): &${m[1]}$`, 'm').exec(compose);
    return anchored === null ? '' : yamlBlock(compose, anchored[1], 0);
  });
  return [own, ...merged].join('\n');
}

function unquote(s: string): string {
  return s.trim().replace(/^(['"])(.*)\1$/, '$2');
}

/** `- host:container[:mode]` entries of a service's volumes. */
function mounts(serviceText: string): { source: string; target: string; isReadOnly: boolean }[] {
  return [...serviceText.matchAll(/^\s+- (\S+:\/\S*)$/gm)].map((m) => {
    const [source, target, mode] = unquote(m[1]).split(':');
    return { source, target, isReadOnly: mode === 'ro' };
  });
}

function isInside(file: string, dir: string): boolean {
  const rel = path.posix.relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel));
}

describe('Dockerfile, .dockerignore and docker-compose.example.yml', () => {
  const stages = dockerStages(read('Dockerfile'));
  const runtime = stages[stages.length - 1];
  const last = (keyword: string): string | undefined =>
    runtime.filter((i) => i.keyword === keyword).pop()?.args;
  const entrypoint = [...execForm(last('ENTRYPOINT') ?? '[]'), ...execForm(last('CMD') ?? '[]')];
  const compose = read('docker-compose.example.yml');
  const proxyService = service(compose, 'shardgate');
  let help: ReturnType<typeof helpOf>;

  beforeAll(() => {
    const r = cli(['--help']);
    expect(r.code, r.stderr).toBe(0);
    help = helpOf(r.stdout);
    expect(help.options.get('--config')).toBe(true);
  });

  it('builds in stages and runs as a non-root user, exposing the port it listens on', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime[0].args).toMatch(/^node:20[\w.-]*-slim$/);
    expect(last('USER')).toBeDefined();
    expect(last('USER')).not.toMatch(/^(root|0)(:|$)/);
    expect(last('EXPOSE')).toBe('6432 8080'); // the proxy, and the health endpoint of the example configuration
    expect(runtime.some((i) => i.keyword === 'COPY' && /--from=\w+ \/app\/dist \.\/dist/.test(i.args))).toBe(
      true,
    );
    expect(last('WORKDIR')).toBe('/app');
  });

  it('starts dist/cli.js, the build of src/cli.ts, with options and commands the CLI has', () => {
    expect(entrypoint.slice(0, 2)).toEqual(['node', 'dist/cli.js']);
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: Record<string, string> };
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(JSON.parse(read('package.json')).bin.shardgate).toBe('dist/cli.js');

    const given = new Map<string, string>();
    let options = help.options;
    for (let i = 2; i < entrypoint.length; i++) {
      const arg = entrypoint[i];
      if (arg.startsWith('--')) {
        expect([...options.keys()], `option ${arg}`).toContain(arg);
        if (options.get(arg) === true) given.set(arg, entrypoint[++i]);
      } else {
        expect([...help.commands], `command ${arg}`).toContain(arg);
        const sub = cli([arg, '--help']);
        expect(sub.code).toBe(0);
        options = new Map([...help.options, ...helpOf(sub.stdout).options]);
      }
    }
    expect(given.get('--config')).toBe(`${CONFIG_DIR}/pgdog.toml`);
    expect(given.get('--users')).toBe(`${CONFIG_DIR}/users.toml`);
  });

  it('has a health check on the HTTP endpoint (200 healthy, 503 not), falling back to the proxy port where it is off', async () => {
    const healthcheck = runtime.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    const argv = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 4));
    expect(argv).toEqual(['node', 'docker/healthcheck.mjs']);
    const env = runtime.find(
      (i) => i.keyword === 'ENV' && i.args.includes('SHARDGATE_HEALTHCHECK_PORT'),
    )?.args;
    expect(env).toContain('SHARDGATE_HEALTHCHECK_PORT=8080');
    expect(env).toContain('SHARDGATE_PORT=6432');
    const listen = async (server: net.Server): Promise<number> => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as net.AddressInfo).port;
    };
    const close = (server: net.Server): Promise<unknown> => new Promise((resolve) => server.close(resolve));
    const freePort = async (): Promise<number> => {
      const s = net.createServer();
      const port = await listen(s);
      await close(s);
      return port;
    };
    // Asynchronously: the endpoint below is served by this process's event loop.
    const probe = (healthPort: number, proxyPort: number): Promise<number | null> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [path.join(root, argv[1])], {
          env: {
            ...process.env,
            SHARDGATE_HEALTHCHECK_PORT: String(healthPort),
            SHARDGATE_PORT: String(proxyPort),
          },
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    let status = 200;
    const endpoint = http.createServer((_req, res) =>
      res.writeHead(status).end(status === 200 ? 'up' : 'down'),
    );
    const proxy = net.createServer((socket) => socket.destroy());
    const [endpointPort, proxyPort] = [await listen(endpoint), await listen(proxy)];
    const nothing = await freePort();
    try {
      expect(await probe(endpointPort, nothing)).toBe(0); // the endpoint decides, whatever the proxy port does
      status = 503;
      expect(await probe(endpointPort, proxyPort)).toBe(1);
      expect(await probe(nothing, proxyPort)).toBe(0); // endpoint off: the proxy port accepts
    } finally {
      await Promise.all([close(endpoint), close(proxy)]);
    }
    expect(await probe(nothing, proxyPort)).toBe(1); // neither answers
  });

  it('does not leave the files the build copies out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim().replace(/^\//, ''))
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist']));
    const copied = stages
      .flat()
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src']));
    for (const file of copied) {
      expect(fs.existsSync(path.join(root, file)), file).toBe(true);
      expect(ignored, file).not.toContain(file);
    }
  });

  it('mounts the example configuration where the image reads it, and the example passes check-config', () => {
    expect(proxyService).toMatch(/^\s+build: \.$/m);
    const configMounts = mounts(proxyService).filter((m) => isInside(`${CONFIG_DIR}/pgdog.toml`, m.target));
    expect(configMounts).toHaveLength(1);
    const [mount] = configMounts;
    const hostFile = (file: string): string =>
      path.join(root, mount.source, path.posix.relative(mount.target, file));
    const config = hostFile(`${CONFIG_DIR}/pgdog.toml`);
    const users = hostFile(`${CONFIG_DIR}/users.toml`);
    expect(fs.existsSync(config) && fs.existsSync(users)).toBe(true);

    const r = cli(['check-config', '--config', config, '--users', users]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^port = 6432$/m);
    expect(r.stdout).toMatch(/^two_phase_commit = true$/m);
    expect(r.stdout).toMatch(/^\[\[sharded_tables\]\]$/m);
    expect(r.stdout.match(/^shard = \d+$/gm)).toEqual(['shard = 0', 'shard = 1']);

    // The decision log: on a named volume of the proxy (not the read-only config mount), writable by the image's user.
    const walDir = /^two_phase_commit_wal_dir = "(.+)"$/m.exec(r.stdout)?.[1] ?? '';
    const walMount = mounts(proxyService).find((m) => isInside(walDir, m.target));
    expect(walMount, `a volume holding ${walDir}`).toBeDefined();
    expect(walMount?.isReadOnly).toBe(false);
    expect(yamlBlock(compose, 'volumes', 0)).toMatch(new RegExp(`^  ${walMount?.source}:$`, 'm'));
    const chowned = runtime.filter((i) => i.keyword === 'RUN' && i.args.includes('chown')).map((i) => i.args);
    expect(chowned.join('\n')).toContain(walMount?.target);

    // Every shard the example names is a PostgreSQL 15/16 service of the compose file with prepared transactions.
    const hosts = [...r.stdout.matchAll(/^\[\[databases\]\]\nname = .*\nhost = "(.+)"$/gm)].map((m) => m[1]);
    expect(hosts).toHaveLength(2);
    for (const host of hosts) {
      const shard = service(compose, host);
      expect(shard, host).toMatch(/^\s+image: postgres:1[56]\b/m);
      expect(Number(/max_prepared_transactions=(\d+)/.exec(shard)?.[1] ?? 0), host).toBeGreaterThan(0);
      expect(proxyService).toContain(`${host}:\n        condition: service_healthy`);
    }
  });
});

// testcontainers is loaded only when a Docker container is really wanted: importing the harness (as the tests, the
// benchmarks and `shardgate demo` do) must not load it. Checked in a fresh Node process, with a control that loads it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');

const SCRIPT = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const isLoaded = () => Object.keys(require.cache).some((file) => file.includes('/node_modules/testcontainers/'));
await import('./src/testing/pg-cluster.ts');
await import('./src/demo/demo.ts');
const afterHarness = isLoaded();
await import('testcontainers');
console.log(JSON.stringify({ afterHarness, afterControl: isLoaded() }));
`;

it('importing src/testing and the demo does not load testcontainers', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout.trim())).toEqual({ afterHarness: false, afterControl: true });
}, 60_000);

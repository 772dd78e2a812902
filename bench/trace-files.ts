// Which files of src/ one fan-out Parse/Bind/Execute/Sync with ORDER BY runs in (docs/architecture.md, "One fan-out
// Bind/Execute with ORDER BY, file by file"): two real PostgreSQL shards, the proxy in-process, V8's precise coverage
// reset after a warm-up (plan cached, servers pooled) and read after one more run of the same request. Lists each file
// with the functions that ran in it; timers of the proxy's own that fired meanwhile show up too (named as such).
// Usage: npx tsx bench/trace-files.ts [--cold yes]   (--cold yes: the first run, plan cache miss, instead)
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { testServers } from '../test/helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy } from '../test/helpers/proxy.js';
import { USERS_SHARDING_TOML } from '../test/helpers/sharding.js';

const SQL = 'SELECT id, name FROM users ORDER BY id';
const isCold = process.argv.includes('--cold') && process.argv[process.argv.indexOf('--cold') + 1] === 'yes';
const srcRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src') + path.sep;

const cluster = await testServers(2, APP_SERVER_OPTIONS);
const proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
const client = new pg.Client({ connectionString: proxy.url });
try {
  await client.connect();
  await client.query('CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text)');
  await client.query(
    "INSERT INTO users VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd') ON CONFLICT DO NOTHING",
  );
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
  // queryMode 'extended': pg sends Parse/Bind/Describe/Execute/Sync (unnamed statement), as for a query with values.
  const request = { text: SQL, values: [], queryMode: 'extended' as const };
  if (!isCold) await client.query(request);
  await session.post('Profiler.takePreciseCoverage'); // resets the counts
  const rows = (await client.query(request)).rows;
  const { result } = await session.post('Profiler.takePreciseCoverage');
  await session.post('Profiler.stopPreciseCoverage');
  session.disconnect();
  if (rows.length !== 4) throw new Error(`expected 4 rows, got ${rows.length}`);
  const files: { file: string; fns: string[] }[] = [];
  for (const script of result) {
    const file = script.url.startsWith('file://') ? fileURLToPath(script.url) : script.url;
    if (!file.startsWith(srcRoot)) continue;
    const ran = script.functions
      .filter((f) => f.ranges[0].count > 0)
      .map((f) => f.functionName || '(anonymous)');
    const names = ran.filter((n) => n !== '');
    if (names.length > 0) files.push({ file: file.slice(srcRoot.length), fns: [...new Set(names)] });
  }
  files.sort((a, b) => a.file.localeCompare(b.file));
  for (const { file, fns } of files) console.log(`${file.padEnd(40)} ${fns.join(', ')}`);
  console.log(`${files.length} files (${isCold ? 'cold: plan cache miss' : 'warm: plan cached'})`);
} finally {
  await client.end().catch(() => undefined);
  await proxy.close();
  await cluster.stop();
}

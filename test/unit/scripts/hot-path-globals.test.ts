// The request and reply hot path reads Node's `Buffer`, `performance` and `process` through imports, not as globals:
// on Node 20 all three are accessor properties of globalThis, so each global read is a LoadGlobalIC miss and a getter
// call that optimized code cannot fold (about 10 ns each; seen in `perf record` of the sharded hop under
// `send`, `markBusy`, `scan`, `readyForQuery`, `join`). An imported binding is a plain load.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** Modules every request or reply runs through (a file added to the hot path belongs here). */
const HOT = [
  'src/backend/server-connection.ts',
  'src/backend/response-scanner.ts',
  'src/backend/pool.ts',
  'src/protocol/frame-reader.ts',
  'src/protocol/frame-list.ts',
  'src/protocol/writer.ts',
  'src/protocol/messages.ts',
  'src/frontend/prepared-statements.ts',
  'src/frontend/prepared-plans.ts',
  'src/frontend/request-send.ts',
  'src/frontend/request-batch.ts',
  'src/frontend/unique-id-request.ts',
  'src/router/bind-params.ts',
  'src/sharding/key-value.ts',
];

const IMPORTS: Record<string, RegExp> = {
  Buffer: /^import \{ Buffer \} from 'node:buffer';$/m,
  performance: /^import \{ performance \} from 'node:perf_hooks';$/m,
  process: /^import process from 'node:process';$/m,
};

describe('hot-path modules import Buffer, performance and process', () => {
  for (const file of HOT) {
    it(file, () => {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      // Code only: comments and string literals may name them freely.
      const code = text
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '')
        .replace(/'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, "''");
      for (const [name, imported] of Object.entries(IMPORTS)) {
        const used = new RegExp(`(^|[^.\\w$])${name}\\.`).test(code);
        if (used) expect(imported.test(text), `${name} used as a global`).toBe(true);
      }
    });
  }
});
